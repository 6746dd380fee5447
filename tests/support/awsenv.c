/* awsenv — keeps every test, and every program a test starts, away from the
 * machine's AWS setup and from link-local metadata addresses: before main,
 * IMDS is disabled, the container and web identity variables are dropped
 * and the shared config files point at nothing.  Tests that exercise those
 * providers set them again, towards fakes on 127.0.0.1. */
#include <stdlib.h>

static void __attribute__((constructor)) awsenv_sanitize(void)
{
    static const char *const drop[] = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
        "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
    };

    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        unsetenv(drop[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/ddb2es-tests/aws-config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ddb2es-tests/aws-credentials", 1);
}
