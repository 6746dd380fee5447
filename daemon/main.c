/* ddb2es — keep a search index equal to a DynamoDB table by following its stream. */
#include <stdio.h>
#include <string.h>

#include "daemon/version.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ddb2es %s\n", DDB2ES_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: ddb2es run|replay|check|status [-c FILE]\n");
    return 64;
}
