/*
 * insert.h
 *	  Writer side of a stream: events inserted by INSERT or COPY are buffered
 *	  per backend and handed to a worker's ring; COMMIT waits for them.
 */
#ifndef STREAM_EXT_INSERT_H
#define STREAM_EXT_INSERT_H

#include "executor/tuptable.h"
#include "utils/rel.h"

extern void stream_insert_init(void);
extern int	stream_arrival_attno(Relation rel);
extern List *stream_output_columns(Relation rel);
extern TimestampTz stream_insert_event(Relation rel, TupleTableSlot *slot, int arrival_attno);
extern void stream_insert_values(Relation rel, Datum *values, bool *isnull, int arrival_attno);
extern TimestampTz stream_arrival_now(void);
extern void stream_insert_statement_done(void);
extern void stream_insert_finishing_prepared(void);
extern bool stream_writer_filled_buffer(void);
extern bool stream_writer_left_sinks(Oid stream);

/*
 * Called before a statement writes into a stream (INSERT, COPY FROM): a
 * module above may make the writer wait or refuse it (the Kafka sink's
 * backpressure, kafka/backpressure.c).  NULL: nothing to check.
 */
typedef void (*stream_write_admit_hook_type) (Relation rel);
extern PGDLLIMPORT stream_write_admit_hook_type stream_write_admit_hook;
extern void stream_admit_writer(Relation rel);
extern void stream_refuse_writes_in_this_process(void);

/*
 * What a writer applies itself of a stream's views, in its own transaction,
 * as bits: WRITER_APPLIES_TABLES, the transforms into tables, when every
 * one of them can be (worker/writer_apply.c); WRITER_APPLIES_SINKS, the
 * staging views of the stream's Kafka producers, whose messages it puts in
 * their outbox (kafka/sink_stage.c).  The workers skip those views for its
 * events.  WRITER_APPLIES_ALL, with either: the stream has no other view,
 * so its events need not go to a worker at all.  Events of a stream with
 * producers sent without STREAM_FLAG_SINKS_STAGED (the writer left the
 * staging to the workers, or could not do it) go to the transaction's home
 * worker from then on, which stages them in the order written.
 */
typedef uint16 WriterApplies;

#define WRITER_APPLIES_NOTHING	0x0000
#define WRITER_APPLIES_TABLES	0x0001
#define WRITER_APPLIES_SINKS	0x0002
#define WRITER_APPLIES_ALL		0x0004

typedef WriterApplies (*stream_writer_applies_hook_type) (Oid stream);

/*
 * Apply what the writer applies of stream's views to its nevents events
 * (their xmin our current (sub)transactions), as far as each part still
 * can be; returns what it applied, decided again (a view may have come
 * since the statement's decision): WRITER_APPLIES_NOTHING when it could
 * not (nothing applied: the events go to the workers as if the writer
 * applied nothing).
 */
typedef WriterApplies (*stream_writer_apply_hook_type) (Oid stream, HeapTupleData *tuples,
														int nevents);

extern PGDLLIMPORT stream_writer_applies_hook_type stream_writer_applies_hook;
extern PGDLLIMPORT stream_writer_apply_hook_type stream_writer_apply_hook;

#endif
