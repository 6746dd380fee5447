#include "base/secret.h"

#include <stdlib.h>
#include <string.h>

void secret_free(char **p)
{
    if (*p) {
        explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}
