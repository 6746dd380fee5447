#ifndef DDB2ES_VERSION_H
#define DDB2ES_VERSION_H
#define DDB2ES_VERSION "0.1.0"
#endif
