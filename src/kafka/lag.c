/*
 * lag.c
 *	  How far a consumer worker is behind: the brokers' high watermarks of
 *	  its partitions minus the offsets it applied up to.
 *
 * While the worker runs, its fetches bring the watermarks (a fetch
 * long-polls the brokers even when the topic is idle), and librdkafka
 * keeps the last ones: the lag is computed from those, with no request of
 * its own.  Once the brokers failed (state "retrying", whichever code saw
 * it: kafka_slot_set_state), those are stale: the lag is unknown (NULL in
 * stream_ext.kafka_consumers, never 0), and about once a second the worker
 * asks the brokers for the watermarks itself.  When they answer, the lag is known again and the worker is
 * "running" at once, without waiting for a message; when they do not,
 * the error is shown as last_error (logged once per outage).
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "kafka/consumer.h"
#include "kafka/process.h"
#include "kafka/lag.h"
#include "kafka/slots.h"

/* How often the brokers are asked while the worker is retrying */
#define PROBE_INTERVAL_MS 1000

/* How long the questions of one probe may take together */
#define PROBE_TIMEOUT_MS 1000

/*
 * The lag of our partitions from librdkafka's last watermarks, or false
 * when one is not known yet.
 */
static bool
cached_lag(KafkaWorker *w, int64 *lag)
{
	*lag = 0;
	for (int i = 0; i < w->nassigned; i++)
	{
		int64		low,
					high;

		if (rd_kafka_get_watermark_offsets(w->rk, w->cfg.topic, w->assigned_partitions[i],
										   &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
			high < 0)
			return false;
		if (w->assigned_next[i] >= 0 && high > w->assigned_next[i])
			*lag += high - w->assigned_next[i];
	}
	return true;
}

/*
 * The lag of our partitions from the brokers' answers, or false (with the
 * error in err) when they did not all answer in time.
 */
static bool
queried_lag(KafkaWorker *w, int64 *lag, rd_kafka_resp_err_t *err)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PROBE_TIMEOUT_MS);

	*lag = 0;
	*err = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < w->nassigned; i++)
	{
		long		secs;
		int			usecs;
		int64		low,
					high;

		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		*err = rd_kafka_query_watermark_offsets(w->rk, w->cfg.topic, w->assigned_partitions[i],
												&low, &high,
												Max((int) (secs * 1000 + usecs / 1000), 1));
		if (*err != RD_KAFKA_RESP_ERR_NO_ERROR)
			return false;
		if (w->assigned_next[i] >= 0 && high > w->assigned_next[i])
			*lag += high - w->assigned_next[i];
	}
	return true;
}

/* Ask the brokers (at most every PROBE_INTERVAL_MS); returns whether they answered. */
static bool
probe_brokers(KafkaWorker *w, int64 *lag, bool *asked)
{
	rd_kafka_resp_err_t err;
	bool		ok;

	*asked = TimestampDifferenceExceeds(w->lag_checked_at, GetCurrentTimestamp(),
										PROBE_INTERVAL_MS);
	if (!*asked)
		return false;
	ok = queried_lag(w, lag, &err);
	w->lag_checked_at = GetCurrentTimestamp();
	if (!ok && !w->lag_failing)
	{
		char		what[256];

		snprintf(what, sizeof(what), "could not get the high watermarks of topic \"%s\": %s",
				 w->cfg.topic, rd_kafka_err2str(err));
		kafka_report_problem(w, what);
	}
	w->lag_failing = !ok;
	return ok;
}

/* Is the worker retrying after a broker failure? */
bool
kafka_brokers_failing(KafkaWorker *w)
{
	bool		retrying;

	SpinLockAcquire(&w->slot->mutex);
	retrying = strcmp(w->slot->state, "retrying") == 0;
	SpinLockRelease(&w->slot->mutex);
	return retrying;
}

/*
 * Show the worker's lag in its slot; while it is retrying, ask the brokers
 * whether they are back.  Called after every batch and idle poll.
 */
void
kafka_refresh_lag(KafkaWorker *w)
{
	bool		retrying = kafka_brokers_failing(w);
	bool		known;
	bool		asked = false;
	int64		lag = 0;

	/*
	 * Retrying and not asked now: the last probe failed, or came before the
	 * error (one that succeeded would have made us running).
	 */
	known = retrying ? probe_brokers(w, &lag, &asked) : cached_lag(w, &lag);

	SpinLockAcquire(&w->slot->mutex);
	w->slot->lag = known ? lag : 0;
	w->slot->lag_known = known;
	if (retrying && known)
		strlcpy(w->slot->state, "running", sizeof(w->slot->state));
	SpinLockRelease(&w->slot->mutex);
}

/*
 * An idle producer retrying (a broker error came while it had nothing to
 * send) asks the brokers for the cluster's metadata, at most every
 * PROBE_INTERVAL_MS: running again as soon as they answer, not at its next
 * delivered message.  Its lag stays its staged count (producer.c).
 */
void
kafka_producer_probe_brokers(KafkaWorker *w)
{
	const struct rd_kafka_metadata *md;

	if (!kafka_brokers_failing(w) ||
		!TimestampDifferenceExceeds(w->lag_checked_at, GetCurrentTimestamp(), PROBE_INTERVAL_MS))
		return;
	w->lag_checked_at = GetCurrentTimestamp();
	if (rd_kafka_metadata(w->rk, 0, NULL, &md, PROBE_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	rd_kafka_metadata_destroy(md);
	kafka_slot_set_state(w->slot, "running");
}
