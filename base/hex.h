/* hex — reading hexadecimal digits (percent escapes, \u escapes, chunk
 * sizes): one table of the 22 digits, either case. */
#ifndef DDB2ES_HEX_H
#define DDB2ES_HEX_H

/* The value of the hex digit c (0-9, a-f, A-F), or -1 when it is none. */
int hex_value(char c);

#endif
