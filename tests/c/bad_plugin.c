/* Plugins that get one thing wrong each, for tests/plugin.rs: compiled with one of -DBAD_ABI,
 * -DBAD_SIZE, -DNO_ENTRY, -DNULL_APPLY, -DFAIL_CREATE, -DFAIL_APPLY, -DWRITE_NAN, or none (a
 * plugin that does nothing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "infogravity.h"

__attribute__((unused)) static int instance;

static void *create(const char *config_json, size_t vocab, char *err, size_t cap) {
    (void)config_json;
    (void)vocab;
#ifdef FAIL_CREATE
    snprintf(err, cap, "this plugin refuses every configuration");
    return NULL;
#else
    (void)err;
    (void)cap;
    return &instance;
#endif
}

static void destroy(void *inst) { (void)inst; }

__attribute__((unused)) static int32_t apply(void *inst, uint64_t seq, float *logits, size_t n, char *err, size_t cap) {
    (void)inst;
    (void)seq;
    (void)logits;
    (void)n;
#if defined(FAIL_APPLY)
    snprintf(err, cap, "the row displeases me");
    return 3;
#elif defined(WRITE_NAN)
    (void)err;
    (void)cap;
    logits[5] = NAN;
    return 0;
#else
    (void)err;
    (void)cap;
    return 0;
#endif
}

static const IgPluginV1 TABLE = {
#ifdef BAD_SIZE
    .struct_size = 16,
#else
    .struct_size = sizeof(IgPluginV1),
#endif
#ifdef BAD_ABI
    .abi_version = IG_PLUGIN_ABI_VERSION + 1,
#else
    .abi_version = IG_PLUGIN_ABI_VERSION,
#endif
    .name = "bad_plugin",
    .create = create,
    .destroy = destroy,
#ifdef NULL_APPLY
    .apply = NULL,
#else
    .apply = apply,
#endif
};

#ifdef NO_ENTRY
const IgPluginV1 *not_the_entry(void) { return &TABLE; }
#else
const IgPluginV1 *ig_plugin_entry(void) { return &TABLE; }
#endif
