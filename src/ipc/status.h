/*
 * status.h
 *	  A snapshot of the shared state of one database's processes and
 *	  writers, for the metrics views (src/metrics/).
 */
#ifndef STREAM_EXT_IPC_STATUS_H
#define STREAM_EXT_IPC_STATUS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* One process of a database's group */
typedef struct StreamProcessStatus
{
	int			worker;			/* 0 .. workers - 1; workers: the combiner */
	bool		combiner;
	const char *state;			/* "running", "starting", "not running" */
	int			pid;			/* 0 when none */
	int64		queue_bytes;	/* written, not yet released (batch workers) */
	int64		queue_size;
	int			writers_waiting_queue;	/* for room in this ring */
	int			writers_waiting_commit; /* for this worker's acknowledgement */
} StreamProcessStatus;

/* The group as a whole */
typedef struct StreamGroupStatus
{
	bool		served;			/* the database has a group */
	uint64		pending_merges; /* commits and async batches not merged yet */
	TimestampTz last_merge_at;	/* the combiner's last completed round; 0 */
	TimestampTz start_failed_since; /* processes could not start; 0 */
	int			nprocesses;
	StreamProcessStatus *processes; /* palloc'd */
} StreamGroupStatus;

/* A writer waiting */
typedef struct StreamWaitingWriter
{
	int			pid;
	const char *waiting_for;	/* "queue", "commit", "workers" */
	int			worker;			/* -1 for "workers" */
	TimestampTz since;
} StreamWaitingWriter;

extern void stream_group_status(Oid dboid, StreamGroupStatus *status);
extern List *stream_waiting_writers(Oid dboid);

#endif
