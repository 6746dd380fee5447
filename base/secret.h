/* secret — how a secret's memory is let go: wiped, then freed. */
#ifndef DDB2ES_SECRET_H
#define DDB2ES_SECRET_H

/* Overwrites the string *p with zeros (in a way the compiler keeps), frees
 * it and sets *p to NULL.  *p may be NULL. */
void secret_free(char **p);

#endif
