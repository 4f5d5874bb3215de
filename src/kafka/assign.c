/*
 * assign.c
 *	  Which partitions a Kafka consumer worker reads, and from which offsets.
 *
 * Without group_id a worker takes the partitions p with
 * p % parallelism = index, at the offsets stored in
 * stream_ext_internal.kafka_offsets.  Partitions without a stored offset
 * start at the consumer's start position (or, when added to the topic after
 * the consumer began, at their earliest message), resolved to a concrete
 * offset and stored before anything is consumed.  With group_id the group's rebalances
 * assign partitions (kafka_rebalance_cb, run inside our own poll), still at
 * the stored offsets, or at the group's committed ones when further.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "jobs/jobs.h"
#include "kafka/assign.h"
#include "kafka/consumer.h"
#include "kafka/process.h"
#include "kafka/slots.h"

/* Longest wait for a broker request (metadata, watermarks) */
#define BROKER_TIMEOUT_MS 5000

#define OFFSETS_OF_PARTS "SELECT partition, next_offset FROM stream_ext_internal.kafka_offsets " \
	"WHERE consumer_id = $1 AND partition = ANY ($2)"

/*
 * Stored next offsets of parts (offset -1 when none), into next[].  With
 * lock, the rows are locked first: in a group, a partition taken over may
 * still have a batch of its last worker in flight, whose offset this one
 * must see (it waits for that batch to end); stored over as it was, the
 * same messages would be applied again.
 */
static void
read_stored_offsets(KafkaWorker *w, int n, const int32 *parts, int64 *next, bool lock)
{
	Oid			argtypes[2] = {INT4OID, INT4ARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Datum		args[2];

	for (int i = 0; i < n; i++)
	{
		next[i] = -1;
		elems[i] = Int32GetDatum(parts[i]);
	}
	args[0] = Int32GetDatum(w->cfg.id);
	args[1] = PointerGetDatum(construct_array(elems, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	if (SPI_execute_with_args(lock ? OFFSETS_OF_PARTS " ORDER BY partition FOR UPDATE" : OFFSETS_OF_PARTS,
							  2, argtypes, args, NULL, !lock, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the offsets of Kafka consumer %d", w->cfg.id);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		int32		p = atoi(kafka_spi_text(r, 1));

		for (int i = 0; i < n; i++)
			if (parts[i] == p)
				next[i] = strtoll(kafka_spi_text(r, 2), NULL, 10);
	}
}

/* Whether part i is one resolve_start is asked to resolve. */
#define UNRESOLVED(i) (want[i] && next[i] < 0)

/*
 * The offsets of partitions parts[0..n-1] of our topic at time at (ms since
 * the epoch), or at their end (RD_KAFKA_OFFSET_END: the high watermark) or
 * start (RD_KAFKA_OFFSET_BEGINNING), into offsets[] (-1 for a partition with
 * no message since that time, or one the brokers gave an error for: errs[],
 * when given).  One request per leader, ending at BROKER_TIMEOUT_MS
 * (rd_kafka_offsets_for_times): rd_kafka_query_watermark_offsets waits for
 * each request's own timeout, a minute, when the brokers are gone, and the
 * worker would answer no stop meanwhile.  Returns the request's error.
 */
rd_kafka_resp_err_t
kafka_partition_offsets(KafkaWorker *w, int n, const int32 *parts, int64 at, int64 *offsets,
						rd_kafka_resp_err_t *errs)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(Max(n, 1));
	rd_kafka_resp_err_t err;

	for (int i = 0; i < n; i++)
	{
		rd_kafka_topic_partition_list_add(list, w->cfg.topic, parts[i])->offset = at;
		offsets[i] = -1;
		if (errs)
			errs[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	err = n > 0 ? rd_kafka_offsets_for_times(w->rk, list, BROKER_TIMEOUT_MS) : RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int j = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && j < list->cnt; j++)
		for (int i = 0; i < n; i++)
			if (parts[i] == list->elems[j].partition)
			{
				if (list->elems[j].err == RD_KAFKA_RESP_ERR_NO_ERROR)
					offsets[i] = list->elems[j].offset;
				else if (errs)
					errs[i] = list->elems[j].err;
			}
	rd_kafka_topic_partition_list_destroy(list);
	return err;
}

/*
 * Resolve the unresolved parts at at (see above), asking for those alone:
 * false, with the problem reported, for each the brokers did not answer for.
 */
static bool
resolve_at(KafkaWorker *w, int n, const int32 *parts, int64 *next, const bool *want, int64 at)
{
	int32	   *asked = palloc(sizeof(int32) * n);
	int		   *index = palloc(sizeof(int) * n);
	int64	   *found = palloc(sizeof(int64) * n);
	rd_kafka_resp_err_t *errs = palloc(sizeof(rd_kafka_resp_err_t) * n);
	rd_kafka_resp_err_t err;
	int			nasked = 0;
	bool		ok = true;

	for (int i = 0; i < n; i++)
		if (UNRESOLVED(i))
		{
			index[nasked] = i;
			asked[nasked++] = parts[i];
		}
	err = kafka_partition_offsets(w, nasked, asked, at, found, errs);
	for (int k = 0; k < nasked; k++)
	{
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR || errs[k] != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			kafka_report_problem(w, psprintf("could not query the offsets of partition %d: %s",
											 asked[k], rd_kafka_err2str(err ? err : errs[k])));
			ok = false;
		}
		else if (found[k] >= 0)
			next[index[k]] = found[k];
	}
	pfree(asked);
	pfree(index);
	pfree(found);
	pfree(errs);
	return ok;
}

/*
 * Offsets where the parts with want[] set and a negative next[] start, from
 * start (a consumer's start setting): earliest, latest, a timestamp, or a
 * JSON object of partition: offset (partitions not in it start at the
 * earliest).  Needs the brokers: a partition they do not answer for keeps its
 * negative next[], and the result is false (with the problem reported).
 */
static bool
resolve_start(KafkaWorker *w, int n, const int32 *parts, int64 *next, const bool *want,
			  const char *start)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int64		ts_ms = -1;
	bool		latest = strcmp(start, "latest") == 0;
	bool		any = false;

	for (int i = 0; i < n; i++)
		any |= UNRESOLVED(i);
	if (!any)
		return true;
	args[0] = CStringGetTextDatum(start);

	if (start[0] == '{')
	{
		if (SPI_execute_with_args("SELECT key::int, value::bigint FROM jsonb_each_text($1::jsonb)",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read start offsets");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int32		p = atoi(kafka_spi_text(r, 1));

			for (int i = 0; i < n; i++)
				if (parts[i] == p && UNRESOLVED(i))
					next[i] = strtoll(kafka_spi_text(r, 2), NULL, 10);
		}
	}
	else if (!latest && strcmp(start, "earliest") != 0)
	{
		if (SPI_execute_with_args("SELECT (extract(epoch FROM $1::timestamptz) * 1000)::bigint",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the start timestamp");
		ts_ms = strtoll(kafka_spi_text(0, 1), NULL, 10);
	}

	if (ts_ms >= 0)
	{
		if (!resolve_at(w, n, parts, next, want, ts_ms))
			return false;
		latest = true;			/* no message since that time: start at the end */
	}
	return resolve_at(w, n, parts, next, want,
					  latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING);
}

/*
 * A kafka_offsets row whose partition was there when the consumer began,
 * but whose start the brokers have not resolved yet: it starts at the
 * consumer's start setting once they answer.
 */
#define OFFSET_AT_START (-2)

/*
 * A kafka_offsets row of a consumer in a group that kafka_reset reset: its
 * partition starts at the consumer's start, whatever offset the group
 * committed (the group's offsets are in Kafka: the reset could not move
 * them, and the larger of the two would win).  Then like OFFSET_AT_START.
 */
#define OFFSET_RESET (-3)

/*
 * Commit the resolved starts of the parts a kafka_reset marked to the
 * group, synchronously, before their marks are replaced: the group's older
 * offsets would win again at the next start if the worker exited before its
 * first batch's (asynchronous) commit reached the group.  Returns false
 * (problem reported) when the group did not take them: the marks stay, and
 * the assignment is tried again.
 */
static bool
commit_resets(KafkaWorker *w, int n, const int32 *parts, const int64 *next, const bool *reset)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(Max(n, 1));
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	for (int i = 0; i < n; i++)
		if (reset[i] && next[i] >= 0)
			rd_kafka_topic_partition_list_add(list, w->cfg.topic, parts[i])->offset = next[i];
	if (list->cnt > 0)
		err = rd_kafka_commit(w->rk, list, 0);
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		kafka_report_problem(w, psprintf("could not commit the reset offsets to group \"%s\": %s",
										 w->cfg.group_id, rd_kafka_err2str(err)));
	return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * The offsets at which parts start: the stored ones, else resolved and
 * stored now, so that a restart before the first batch starts at the same
 * place.  A part whose start the brokers did not give keeps next[] < 0.
 *
 * Without group_id, parts are all the partitions of the topic, and the
 * workers of a consumer do this one at a time (under an advisory lock on
 * the consumer's id).  A consumer without any kafka_offsets row starts
 * afresh, every partition at the consumer's start; a partition the brokers
 * do not answer for then gets an OFFSET_AT_START row, resolved by whichever
 * worker tries next.  Once a consumer has rows, a partition without one was
 * added to the topic after the consumer began (seen now, or on a later
 * start): none of its messages has been read, so it starts at its earliest
 * whatever the start setting says.  Only missing offsets are stored: those
 * of the other workers' partitions move on under them.
 *
 * With group_id, parts are what the group assigned us, and the group's
 * committed offsets count too: a partition taken over from another server
 * continues where that one committed, if that is further; partitions with
 * neither start at the consumer's start.  Returns false when the brokers
 * did not answer.
 */
static bool
starting_offsets(KafkaWorker *w, int n, const int32 *parts, int64 *next)
{
	bool		ok = true;
	bool		any_row = false;
	bool	   *had_row = palloc(sizeof(bool) * Max(n, 1));
	bool	   *stored = palloc(sizeof(bool) * Max(n, 1));
	bool	   *at_start = palloc(sizeof(bool) * Max(n, 1));
	bool	   *added = palloc(sizeof(bool) * Max(n, 1));
	bool	   *reset = palloc(sizeof(bool) * Max(n, 1));
	bool		resets_committed;
	Oid			argtypes[3] = {INT4OID, INT4OID, INT8OID};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!w->cfg.group_id)
	{
		Datum		id = Int32GetDatum(w->cfg.id);

		/* not the catalog row's lock: kafka_stop must not wait for brokers */
		if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock("
								  "'stream_ext_internal.kafka_consumers'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int4, $1)",
								  1, argtypes, &id, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not lock Kafka consumer %d", w->cfg.id);

		/*
		 * A snapshot taken after the lock sees what the worker before us
		 * stored: the worker runs at READ COMMITTED (see consumer.c).
		 */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	read_stored_offsets(w, n, parts, next, w->cfg.group_id != NULL);
	for (int i = 0; i < n; i++)
	{
		had_row[i] = next[i] != -1;
		stored[i] = next[i] >= 0;
		reset[i] = next[i] == OFFSET_RESET;
		any_row |= had_row[i];
	}

	if (w->cfg.group_id)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
		rd_kafka_resp_err_t err;

		for (int i = 0; i < n; i++)
			rd_kafka_topic_partition_list_add(list, w->cfg.topic, parts[i]);
		err = rd_kafka_committed(w->rk, list, BROKER_TIMEOUT_MS);
		for (int j = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && j < list->cnt; j++)
			err = list->elems[j].err;
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			/*
			 * Not known where the group stands: a partition taken over
			 * must not start at the consumer's start, which could skip or
			 * repeat what another server consumed.  The assignment fails,
			 * and is tried again.
			 */
			kafka_report_problem(w, psprintf("could not read the offsets committed by group \"%s\": %s",
											 w->cfg.group_id, rd_kafka_err2str(err)));
			ok = false;
		}
		else
		{
			for (int j = 0; j < list->cnt; j++)
				for (int i = 0; i < n; i++)
					if (parts[i] == list->elems[j].partition && next[i] != OFFSET_RESET &&
						list->elems[j].offset > next[i])
						next[i] = list->elems[j].offset;
		}
		rd_kafka_topic_partition_list_destroy(list);
	}

	for (int i = 0; i < n; i++)
	{
		added[i] = !w->cfg.group_id && any_row && !had_row[i];
		/* (nothing starts anew while the group's offsets are unknown) */
		at_start[i] = !added[i] && ok;
	}
	ok &= resolve_start(w, n, parts, next, at_start, w->cfg.start);
	ok &= resolve_start(w, n, parts, next, added, "earliest");
	resets_committed = !w->cfg.group_id || commit_resets(w, n, parts, next, reset);
	ok &= resets_committed;

	for (int i = 0; i < n; i++)
	{
		Datum		args[3] = {Int32GetDatum(w->cfg.id), Int32GetDatum(parts[i]),
		Int64GetDatum(next[i])};
		bool		store;

		if (w->cfg.group_id)
			store = next[i] >= 0 && (!reset[i] || resets_committed);
		else if (stored[i])
			store = false;		/* moving on under its worker */
		else if (next[i] >= 0)
			store = true;		/* resolved now */
		else
		{
			/* not resolved: a partition of a fresh start waits for its start */
			store = !had_row[i] && !added[i];
			args[2] = Int64GetDatum(OFFSET_AT_START);
		}
		if (store &&
			SPI_execute_with_args("INSERT INTO stream_ext_internal.kafka_offsets "
								  "(consumer_id, partition, next_offset) VALUES ($1, $2, $3) "
								  "ON CONFLICT (consumer_id, partition) DO UPDATE "
								  "SET next_offset = excluded.next_offset",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store the offsets of Kafka consumer %d", w->cfg.id);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pfree(had_row);
	pfree(stored);
	pfree(at_start);
	pfree(added);
	pfree(reset);
	return ok;
}

/* Remember the assignment (in w->cxt) and show it in the slot. */
static void
set_assignment(KafkaWorker *w, int n, const int32 *parts, const int64 *next)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	if (w->assigned_partitions)
	{
		pfree(w->assigned_partitions);
		pfree(w->assigned_next);
	}
	w->nassigned = n;
	w->assigned_partitions = palloc(sizeof(int32) * Max(n, 1));
	w->assigned_next = palloc(sizeof(int64) * Max(n, 1));
	if (n > 0)
	{
		memcpy(w->assigned_partitions, parts, sizeof(int32) * n);
		memcpy(w->assigned_next, next, sizeof(int64) * n);
	}
	MemoryContextSwitchTo(old);

	SpinLockAcquire(&w->slot->mutex);
	w->slot->npartitions = Min(n, KAFKA_MAX_STATUS_PARTITIONS);
	for (int i = 0; i < w->slot->npartitions; i++)
		w->slot->partitions[i] = parts[i];
	SpinLockRelease(&w->slot->mutex);
}

/* Index of partition among the assigned ones, or -1. */
int
kafka_assigned_index(KafkaWorker *w, int32 partition)
{
	for (int i = 0; i < w->nassigned; i++)
		if (w->assigned_partitions[i] == partition)
			return i;
	return -1;
}

/*
 * Partition count of the topic, or -1 (problem reported) when the brokers
 * do not answer or do not know the topic.
 */
int
kafka_topic_partitions(KafkaWorker *w)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->rk, w->cfg.topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(w->rk, 0, rkt, &md, BROKER_TIMEOUT_MS);
	int			count = -1;

	if (err)
		kafka_report_problem(w, psprintf("could not fetch metadata: %s", rd_kafka_err2str(err)));
	else if (md->topic_cnt < 1 || md->topics[0].err)
		kafka_report_problem(w, psprintf("topic is not available: %s",
								rd_kafka_err2str(md->topic_cnt < 1 ?
												 RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART :
												 md->topics[0].err)));
	else
		count = md->topics[0].partition_cnt;
	if (!err)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return count;
}

/*
 * Without group_id: take partitions p % parallelism = index at their
 * offsets, retrying with backoff until the brokers answer.
 */
void
kafka_assign_static(KafkaWorker *w)
{
	long		backoff = 200;

	for (;;)
	{
		int			count = kafka_topic_partitions(w);

		if (count >= 0)
		{
			int32	   *parts = palloc(sizeof(int32) * Max(count, 1));
			int64	   *next = palloc(sizeof(int64) * Max(count, 1));
			int			n = 0;
			bool		mine_ready = true;

			for (int p = 0; p < count; p++)
				parts[p] = p;
			(void) starting_offsets(w, count, parts, next);

			/* ours: p % parallelism = index; other workers wait for theirs */
			for (int p = 0; p < count; p++)
				if (p % w->cfg.parallelism == w->index)
				{
					parts[n] = p;
					next[n] = next[p];
					mine_ready &= next[n++] >= 0;
				}
			if (mine_ready)
			{
				rd_kafka_topic_partition_list_t *list;
				rd_kafka_resp_err_t err;

				list = rd_kafka_topic_partition_list_new(Max(n, 1));
				for (int i = 0; i < n; i++)
					rd_kafka_topic_partition_list_add(list, w->cfg.topic, parts[i])->offset = next[i];
				err = rd_kafka_assign(w->rk, list);
				rd_kafka_topic_partition_list_destroy(list);
				if (err)
					ereport(ERROR,
							(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							 errmsg("could not assign partitions of topic \"%s\"", w->cfg.topic),
							 errdetail_internal("%s", rd_kafka_err2str(err))));
				set_assignment(w, n, parts, next);
				w->topic_partition_count = count;
				return;
			}
			/* (starting_offsets left TopMemoryContext current: not kept) */
			pfree(parts);
			pfree(next);
		}
		kafka_slot_set_state(w->slot, "retrying");
		kafka_consumer_sleep(w, backoff);
		backoff = Min(backoff * 2, 10000);
	}
}

/*
 * Group mode: the group assigns and revokes partitions while we poll.  On
 * assignment we start at our stored offsets (or the group's committed ones
 * if further, see starting_offsets); on revocation we commit our stored
 * offsets to the group synchronously, so that the next owner continues
 * exactly there, and drop the messages polled but not applied yet.
 * Runs in this process, inside rd_kafka_consume_batch_queue; errors are
 * caught here and end the worker from the loop.  opaque is the KafkaWorker
 * (rd_kafka_conf_set_opaque).
 */
void
kafka_rebalance_cb(rd_kafka_t *r, rd_kafka_resp_err_t err,
				   rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	KafkaWorker *w = opaque;
	MemoryContext cxt = CurrentMemoryContext;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		int			n = partitions->cnt;
		int32	   *parts = palloc(sizeof(int32) * Max(n, 1));
		int64	   *next = palloc(sizeof(int64) * Max(n, 1));
		volatile bool ok = false;

		for (int i = 0; i < n; i++)
			parts[i] = partitions->elems[i].partition;
		PG_TRY();
		{
			ok = starting_offsets(w, n, parts, next);
		}
		PG_CATCH();
		{
			stream_log_error_and_abort(cxt);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		if (!ok)
		{
			w->assignment_failed = true;
			rd_kafka_assign(r, NULL);
			return;
		}
		for (int i = 0; i < n; i++)
			partitions->elems[i].offset = next[i];
		rd_kafka_assign(r, partitions);
		set_assignment(w, n, parts, next);
	}
	else
	{
		if (w->nassigned > 0)
		{
			rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(w->nassigned);

			for (int i = 0; i < w->nassigned; i++)
				rd_kafka_topic_partition_list_add(list, w->cfg.topic,
												  w->assigned_partitions[i])->offset = w->assigned_next[i];
			(void) rd_kafka_commit(r, list, 0);
			rd_kafka_topic_partition_list_destroy(list);
		}
		rd_kafka_assign(r, NULL);
		set_assignment(w, 0, NULL, NULL);
		w->assignment_revoked = true;
	}
}
