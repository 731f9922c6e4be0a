/* Internals of the index module: the on-disk layout (docs/index-format.md is
 * the prose version of this file) and the in-memory state shared by the
 * loader, the writer and the search kernels. */
#ifndef DP_INDEX_INTERNAL_H
#define DP_INDEX_INTERNAL_H

#include "doppel/index.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the index format is little-endian and doppel maps it as is"
#endif

#define DPX_MAGIC "DOPPELIX"
#define DPX_VERSION 1u
#define DPX_HEADER_BYTES 4096u
#define DPX_ALIGN 64u
#define DPX_SLOT0 64u
#define DPX_SLOT_BYTES 64u
#define DPX_DIR_MAGIC "DPXDIR\0\0"
#define DPX_MAX_DIM 65536u
#define DPX_MAX_KEY 255u
#define DPX_KIND_REQUIRED 0x80000000u /* unknown kinds with this bit are refused */

enum {
    DPX_SEC_VECTORS = 1,
    DPX_SEC_IDS = 2,
    DPX_SEC_ENTRIES = 3,
    DPX_SEC_STRINGS = 4,
    DPX_SEC_DELETED = 5,
    DPX_SEC_FAILURES = 6,
    DPX_SEC_NAMED = 7, /* an application section (ANN graphs, ...): dpx_named_head + bytes */
};

#define DPX_NAME_MAX 55u /* bytes of a named section's name, without the NUL */

/* File header, offset 0 (the rest of the 4 KiB page is zero). */
typedef struct dpx_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t endian; /* 0x01020304 as written by a little-endian machine */
    uint32_t crc;    /* CRC-32C of the 20 bytes above */
} dpx_header;

/* Commit slot, at 64 and 128. The valid slot with the larger seq wins; a
 * slot torn by a crash fails its own checksum and the other one is used. */
typedef struct dpx_slot {
    uint64_t seq;
    uint64_t dir_offset;
    uint64_t dir_bytes;
    uint64_t file_bytes; /* committed length; bytes past it are ignored */
    uint32_t dir_crc;
    uint32_t reserved[6];
    uint32_t crc; /* CRC-32C of the 60 bytes above */
} dpx_slot;

/* Directory head; followed by n_kv key/value records then n_sections
 * section records, all 8-byte aligned. */
typedef struct dpx_dir {
    char magic[8];
    uint32_t n_kv;
    uint32_t n_sections;
    uint64_t next_id;
    uint64_t reserved;
} dpx_dir;

typedef struct dpx_kv {
    uint8_t type; /* dp_meta_type */
    uint8_t key_len;
    uint16_t reserved;
    uint32_t value_len; /* STR: bytes without NUL; I64/F64: 8 */
    /* key bytes, value bytes, zero padding to 8 */
} dpx_kv;

typedef struct dpx_sec {
    uint32_t kind;
    uint32_t segment;
    uint64_t offset;
    uint64_t bytes;
    uint64_t count;
    uint32_t crc;
    uint32_t reserved0;
    uint64_t reserved1;
} dpx_sec;

/* One row's metadata; strings live in the segment's string section, each
 * followed by a NUL (checked before a pointer is handed out). */
typedef struct dpx_entry {
    uint64_t path_off;
    uint64_t label_off;
    uint32_t path_len;
    uint32_t label_len;
    uint32_t width;
    uint32_t height;
    uint32_t flags;
    uint32_t reserved0;
    uint8_t hash[32];
    uint64_t reserved1;
} dpx_entry;

/* First 64 bytes of a named section, so the data after it keeps the
 * section's 64-byte alignment. The name is NUL-padded. */
typedef struct dpx_named_head {
    char name[DPX_NAME_MAX + 1];
    uint64_t data_bytes; /* == the section's count; bytes == 64 + count */
} dpx_named_head;

_Static_assert(sizeof(dpx_named_head) == 64, "named head layout");
_Static_assert(sizeof(dpx_header) == 24, "header layout");
_Static_assert(sizeof(dpx_slot) == 64, "slot layout");
_Static_assert(sizeof(dpx_dir) == 32, "dir layout");
_Static_assert(sizeof(dpx_kv) == 8, "kv layout");
_Static_assert(sizeof(dpx_sec) == 48, "section layout");
_Static_assert(sizeof(dpx_entry) == 80, "entry layout");

uint32_t dpx_crc32c(uint32_t crc, const void *data, size_t n);

/* A run of rows stored together: one commit's additions, or the whole index
 * after a compaction. The last segment may be the uncommitted one, whose
 * arrays live on the heap and grow. */
typedef struct dpx_seg {
    const float *vec;
    const uint64_t *ids;
    const dpx_entry *ent;
    const char *str;
    size_t str_bytes;
    size_t n;
    size_t row0;
    dpx_sec sec[4]; /* vectors, ids, entries, strings as in the directory */
} dpx_seg;

typedef struct dpx_meta {
    char *key;
    int type;
    char *s;
    int64_t i;
    double f;
} dpx_meta;

/* A named section: the committed copy in the map and/or a replacement put
 * since the last commit (which the next commit writes). */
typedef struct dpx_named {
    char name[DPX_NAME_MAX + 1];
    dpx_sec sec;         /* as committed; kind 0 if never committed */
    const uint8_t *data; /* committed bytes after the head */
    uint8_t *pend;       /* 64-byte aligned heap copy, when has_pend */
    size_t pend_bytes;
    bool has_pend;
    bool dropped; /* removed since the last commit */
} dpx_named;

typedef struct dpx_strmap {
    uint64_t *slots; /* row + 1, 0 = empty */
    size_t cap;
} dpx_strmap;

struct dp_index {
    char *path;
    int fd; /* -1 when never written or opened from memory */
    bool writable;
    const uint8_t *map; /* committed bytes, read-only */
    size_t map_len;
    bool mapped; /* map came from mmap (else from the caller) */

    /* committed state */
    uint64_t seq;
    int slot; /* slot index holding seq */
    uint64_t file_bytes;
    bool ever_written;

    uint32_t dim;
    int metric;
    bool normalized;
    dpx_meta *meta;
    size_t n_meta;
    uint64_t next_id;

    dpx_seg *segs;
    size_t n_seg, cap_seg;
    size_t n_committed_seg;

    /* the uncommitted segment's heap storage (segs[n_seg-1] when pending) */
    float *p_vec;
    uint64_t *p_ids;
    dpx_entry *p_ent;
    char *p_str;
    size_t p_n, p_cap, p_str_len, p_str_cap;
    bool pending;

    /* rows, liveness, id map */
    size_t rows;
    size_t live;
    uint8_t *dead;   /* bit per row */
    size_t dead_cap; /* bytes */
    uint64_t *id_keys;
    uint64_t *id_rows; /* row + 1, 0 = empty */
    size_t id_cap;
    uint64_t *deleted; /* ids removed, committed or not */
    size_t n_deleted, cap_deleted;
    bool deleted_dirty;
    dpx_sec deleted_sec; /* as committed (kind 0 if none) */

    /* failure list */
    char **fail_path, **fail_reason;
    size_t n_fail;
    bool fail_dirty;
    dpx_sec fail_sec;

    /* named sections (committed and pending) */
    dpx_named *named;
    size_t n_named, cap_named;

    /* other sections of the committed directory, for describe */
    dpx_sec *all_secs;
    size_t n_all_secs;

    bool dirty;

    pthread_mutex_t path_mu;
    dpx_strmap path_map; /* built on first find_path */
    bool path_map_ready;
};

/* Row -> segment and local index; row must be < ix->rows. */
const dpx_seg *dpx_seg_of(const dp_index *ix, size_t row, size_t *local);
static inline bool dpx_dead(const dp_index *ix, size_t row)
{
    return (ix->dead[row >> 3] >> (row & 7)) & 1;
}
static inline uint64_t dpx_row_id(const dp_index *ix, size_t row)
{
    size_t l;
    const dpx_seg *s = dpx_seg_of(ix, row, &l);
    return s->ids[l];
}

/* ---- Named sections (the ANN module stores its structures in these) ---- *
 * Names are 1..55 bytes of [A-Za-z0-9._-]. Data handed out is 64-byte
 * aligned and stays valid until the next modifying call on the index. */

/* Store (a copy of) data under name, replacing any section of that name at
 * the next commit. Needs a writable index. */
int dp_index_put_section(dp_index *ix, const char *name, const void *data, size_t bytes);
/* Forget a section at the next commit; DP_ERR_NOT_FOUND if there is none. */
int dp_index_drop_section(dp_index *ix, const char *name);
/* The current bytes of a section (pending or committed); DP_ERR_NOT_FOUND
 * if absent. */
int dp_index_get_section(const dp_index *ix, const char *name, const void **data, size_t *bytes);
/* Check a committed section's CRC-32C (0 for a pending one, which never
 * touched the disk). */
int dp_index_check_section(const dp_index *ix, const char *name);
/* The row of a stored id (live or removed but not yet compacted). */
bool dpx_find_row(const dp_index *ix, uint64_t id, size_t *row);
/* Sections whose name starts with prefix: count, and drop them all. */
size_t dp_index_count_sections(const dp_index *ix, const char *prefix);
int dp_index_drop_sections(dp_index *ix, const char *prefix);

/* Drop this process's pages of [p, p + n) when they belong to the file
 * mapping (the page cache keeps them; touching them again faults them back
 * in): for a section a caller has copied out. No-op for other memory. */
void dpx_release_pages(const dp_index *ix, const void *p, size_t n);

/* Replace every live row's vector by vecs (live rows in storage order, dim
 * floats each) and the index's dimension by dim, and commit the whole state
 * as one compacted file (temp + fsync + rename). Named sections and pending
 * changes go with it; sections that depend on the old vectors (ANN) are the
 * caller's to drop first. Needs a writable index. */
int dpx_replace_vectors(dp_index *ix, uint32_t dim, const float *vecs);

#endif
