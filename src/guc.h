/*
 * guc.h
 *	  Configuration parameters of stream_ext (all named stream_ext.*).
 */
#ifndef STREAM_EXT_GUC_H
#define STREAM_EXT_GUC_H

typedef enum StreamCommitMode
{
	STREAM_COMMIT_SYNC,			/* COMMIT waits until events are applied */
	STREAM_COMMIT_ASYNC			/* COMMIT returns at once */
} StreamCommitMode;

extern int	stream_ext_workers_per_database;
extern int	stream_ext_max_databases;
extern int	stream_ext_queue_size_kb;
extern int	stream_ext_batch_size;
extern int	stream_ext_flush_interval_ms;
extern int	stream_ext_combine_interval_ms;
extern int	stream_ext_commit_mode;
extern char *stream_ext_read_time_setting;
extern int	stream_ext_reap_interval_ms;
extern int	stream_ext_jit_above_events;
extern int	stream_ext_max_view_errors;
extern int	stream_ext_view_time_limit_ms;
extern int	stream_ext_join_cache_kb;
extern int	stream_ext_pending_key_slots;
extern bool stream_ext_preloaded;

extern void stream_ext_define_gucs(void);
extern int	stream_pin_internal_search_path(void);
extern void stream_require_preload(void);

/*
 * Who runs a piece of code, and the caller's identity to return to.
 *
 * The extension's own statements in a user's backend (its internal objects,
 * its catalog rows) run as the bootstrap superuser, with names resolved as
 * stream_pin_internal_search_path says, between stream_begin_as_extension
 * and stream_end_as_extension.
 *
 * A view owner's code (the view's expressions, aggregate support functions,
 * the triggers of a transform's table) runs as that owner in a
 * security-restricted operation, as REFRESH MATERIALIZED VIEW runs a
 * materialized view's query, between stream_begin_as_owner and
 * stream_end_as_owner; settings changed meanwhile (the owner's
 * set_config(..., false) included) are dropped at the end.
 */
typedef struct StreamRunAs
{
	Oid			user;			/* the caller's, to return to */
	int			sec;
	int			guc_level;
} StreamRunAs;

extern void stream_begin_as_extension(StreamRunAs *as);
extern void stream_end_as_extension(StreamRunAs *as);
extern void stream_begin_as_owner(StreamRunAs *as, Oid owner);
extern void stream_end_as_owner(StreamRunAs *as);

#endif
