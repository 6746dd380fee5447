/* profile — the AWS shared config and credentials files (AWS-AUTH §4) and
 * the plan of how a profile's credentials are obtained.  Pure: no uv, no
 * curl; the only I/O is reading the two files.
 *
 * Syntax (aws-c-sdkutils and botocore): `[profile NAME]` or `[default]` in
 * the config file (`[profile default]` beats `[default]`; other bare names
 * are ignored), `[NAME]` in the credentials file (a `profile ` prefix there
 * is ignored), `[services NAME]` sections; `key = value` lines, `#`/`;`
 * comment lines, inline comments after whitespace on property lines,
 * continuation lines (leading whitespace) appended with "\n", and
 * sub-properties under a key with an empty value.  For the same profile,
 * keys from the credentials file override those of the config file.
 */
#ifndef DDB2ES_PROFILE_H
#define DDB2ES_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

struct profile_kv {
    char *key, *value;       /* value "" for a key with sub-properties */
    struct profile_kv *sub;  /* sub-properties (services sections) */
    size_t nsub;
};

struct profile {
    char *name;
    struct profile_kv *kv;
    size_t n;
};

struct profile_set {
    struct profile *profiles;
    size_t nprofiles;
    struct profile *services; /* [services NAME] */
    size_t nservices;
};

/* getenv, or a table in tests. */
typedef char *profile_getenv_fn(const char *name);

/* Parses one file's text and merges it into set.  credentials_file selects
 * the credentials file's section rules.  Warnings (ignored sections, lines
 * that are neither) go to the log naming origin and line.  0 or -ENOMEM. */
int profile_parse(struct profile_set *set, const char *text, size_t len, bool credentials_file,
                  const char *origin);
/* Reads the config file (AWS_CONFIG_FILE, else ~/.aws/config) then the
 * credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials);
 * ~ is $HOME, else the passwd entry.  A missing file is no error.  0,
 * -ENOMEM, or -EIO with why[] naming an unreadable file. */
int profile_load(struct profile_set *set, profile_getenv_fn *env, char *why, size_t whylen);
void profile_set_free(struct profile_set *set);

const struct profile *profile_find(const struct profile_set *set, const char *name);
/* The value of key in p ("" for a sub-property parent); NULL when absent or p is NULL. */
const char *profile_get(const struct profile *p, const char *key);
/* The endpoint configured for a service in the profile: its `services`
 * section's `<service_key> = / endpoint_url = …`, else the profile's own
 * endpoint_url; NULL when neither. */
const char *profile_endpoint(const struct profile_set *set, const struct profile *p,
                             const char *service_key);
/* The profile name in effect: explicit (the [aws] profile), else
 * AWS_PROFILE, else "default". */
const char *profile_selected(const char *explicit_name, profile_getenv_fn *env);

/* ---- the chain planner (AWS-AUTH §4.4) ---------------------------------- */

enum plan_kind {
    PLAN_STATIC,   /* keys in the profile */
    PLAN_SOURCE,   /* credential_source: Environment, Ec2InstanceMetadata, EcsContainer */
    PLAN_WEBID,    /* role_arn + web_identity_token_file */
    PLAN_PROCESS,  /* credential_process */
    PLAN_ASSUME,   /* sts:AssumeRole with the previous step's key */
};

/* Strings point into the profile set. */
struct plan_step {
    enum plan_kind kind;
    const char *profile;
    const char *access_key_id, *secret_access_key, *session_token; /* STATIC */
    const char *source;                                            /* SOURCE */
    const char *role_arn, *session_name, *external_id;             /* ASSUME, WEBID */
    long duration_seconds;                                         /* ASSUME; 0 = STS default */
    const char *token_file;                                        /* WEBID */
    const char *command;                                           /* PROCESS */
};

#define PLAN_MAX 16

struct plan {
    struct plan_step steps[PLAN_MAX]; /* steps[0] gives the base key; the rest are ASSUME */
    size_t n;
};

/* Plans how profile `name` gets its key.  0; -ENOENT when the profile does
 * not exist; -ENOKEY when it holds no credential settings at all; -EINVAL
 * for a broken configuration (loop, missing source profile, partial keys,
 * mfa_serial, both or neither of source_profile/credential_source, an
 * unknown credential_source, web_identity_token_file without role_arn).
 * why[] says which profile and key, never a secret. */
int profile_plan(const struct profile_set *set, const char *name, struct plan *out, char *why,
                 size_t whylen);
const char *plan_kind_name(enum plan_kind k);

#endif
