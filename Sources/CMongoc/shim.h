#ifndef PARLEY_CMONGOC_SHIM_H
#define PARLEY_CMONGOC_SHIM_H
#include <mongoc/mongoc.h>
#include <bson/bson.h>
#include <stdlib.h>

/// `bson_iter_t` is declared 128-byte aligned, so Swift cannot place one on its stack:
/// these allocate and free one on the heap with the right alignment.
static inline bson_iter_t *parley_bson_iter_new(void) {
    return (bson_iter_t *)bson_aligned_alloc0(128, sizeof(bson_iter_t));
}
static inline void parley_bson_iter_free(bson_iter_t *iter) { bson_free(iter); }

/// Storage for a reply document that libmongoc initialises itself (an "uninitialized
/// bson_t" out-parameter): aligned, initialised empty so that freeing it is always safe.
static inline bson_t *parley_bson_reply_new(void) {
    bson_t *b = (bson_t *)bson_aligned_alloc0(128, sizeof(bson_t));
    bson_init(b);
    return b;
}
static inline void parley_bson_reply_free(bson_t *b) {
    bson_destroy(b);
    bson_free(b);
}
/// libmongoc logs every failed heartbeat at DEBUG on stderr; Parley reports failures itself,
/// so only warnings and worse from libmongoc reach stderr.
static inline void parley_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message, void *data) {
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_WARNING) {
        mongoc_log_default_handler(level, domain, message, NULL);
    }
}
static inline void parley_mongoc_quiet_logs(void) { mongoc_log_set_handler(parley_mongoc_log, NULL); }
#endif
