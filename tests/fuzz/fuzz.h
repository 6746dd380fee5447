/* fuzz — what the libFuzzer targets in this directory share.  Each target is
 * one file defining LLVMFuzzerTestOneInput; `make fuzz` builds them with
 * clang -fsanitize=fuzzer,address,undefined into build-fuzz/fuzz/. */
#ifndef DDB2ES_FUZZ_H
#define DDB2ES_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes data to path (created or truncated); aborts on failure, which is
 * the harness's fault, not the target's. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);
/* A private directory under $TMPDIR (or /tmp) for targets that read files,
 * made once per process; removed at exit. */
const char *fuzz_tmpdir(void);

#endif
