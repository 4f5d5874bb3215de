/*
 * apply.h
 *	  Applying one batch of events to the continuous views of its streams.
 */
#ifndef STREAM_EXT_APPLY_H
#define STREAM_EXT_APPLY_H

#include "nodes/pg_list.h"
#include "executor/spi.h"
#include "datatype/timestamp.h"
#include "stream/fdw.h"
#include "window/lateness.h"

typedef struct BatchSender
{
	int			procno;
	uint64		xact_seq;
	bool		commit;			/* the sender waits for an acknowledgement */
	TimestampTz sent_at;		/* sent at COMMIT or a statement's end
								 * (async); 0 for other records */
} BatchSender;

/*
 * The transient failures of the tries of one set of events (a batch of a
 * ring, a Kafka consumer's batch): the view in whose run the last tries
 * failed, how many in a row, and the views that came to own the transient
 * errors their code raises (apply.c).  All zeros: none yet.
 */
typedef struct StreamTransientTries
{
	int			view;
	int			failures;
	int			nowning;
	int			owning[8];
} StreamTransientTries;

/*
 * A record of a writer whose transaction may commit before its records are
 * applied (flagged QUEUED, ipc/record.h): a batch keeps one entry per run
 * of such records of one writer, merged when it is applied.
 */
typedef struct BatchQueuedWriter
{
	TransactionId top;			/* the writer's top-level transaction */
	bool		first;			/* its first record is in the batch */
	int			lasts;			/* its LAST records in the batch */
	int			last_of;		/* how many workers got one; 0: none here */
} BatchQueuedWriter;

typedef struct StreamBatch
{
	List	   *streams;		/* StreamBatchEvents * */
	int			nevents;
	int			nsenders;
	int			maxsenders;
	BatchSender *senders;		/* one per ring record */
	bool		has_commit;
	bool		has_async;		/* records of writers that do not wait */
	int			nqueued;
	int			maxqueued;
	BatchQueuedWriter *queued;	/* writers of QUEUED records */
	int			nqueued_xmins;
	int			maxqueued_xmins;
	StreamQueuedXmin *queued_xmins; /* their events' (sub)transactions */
	bool		queued_merged;	/* apply.c merged the two above */
	uint64		end_pos;		/* ring position after the batch */
	StreamTransientTries transient;
} StreamBatch;

/*
 * Stage events for the staging views sinks (CachedView) of their stream,
 * of its Kafka producers, another way than by their plans (a module above:
 * kafka/sink_stage.c), in the caller's transaction; returns whether it did
 * for all of them (then their plans do not run).  NULL: never.
 */
typedef bool (*stream_worker_stage_sinks_hook_type) (StreamBatchEvents *events, List *sinks);
extern PGDLLIMPORT stream_worker_stage_sinks_hook_type stream_worker_stage_sinks_hook;

extern void stream_apply_events(List *streams, int worker_no, bool careful);
extern void stream_apply_held_events(int view_id, List *runs, int worker_no, bool careful);
extern void stream_apply_table_transforms(StreamBatchEvents *events, int worker_no);
extern void stream_apply_batch(StreamBatch *batch, int worker_no, bool careful);
extern void stream_apply_discarded_batch(StreamBatch *batch);
extern int	stream_apply_running_view(void);
extern void stream_apply_forget_running_view(void);
extern void stream_apply_skip_views(const int *views, int n);
/*
 * After this many tries of the same events in a row, each failing
 * transiently in the same view's run, that view owns (as its events') the
 * transient errors its code raises for one event alone (apply.c)
 */
#define STREAM_TRANSIENT_TRIES 3

extern bool stream_error_is_transient(int sqlerrcode);
extern bool stream_error_raised_by_code(ErrorData *e);
extern bool stream_transient_tries_note(StreamTransientTries *tries, int sqlerrcode);
extern void stream_apply_views_own_transient_errors(const int *views, int n);
extern ErrorData *stream_try_in_subtransaction(void (*work) (void *arg), void *arg);

#endif
