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
 * asks the brokers for the cluster's metadata.  When they answer, the
 * worker is "running" at once, without waiting for a message, and its lag
 * is known again from the watermarks its fetches bring; when they do not,
 * the error is shown as last_error (logged once per outage).  Not by asking
 * for the watermarks themselves: librdkafka bounds that question by each
 * request's own timeout (a minute), not by the one it is given, and with
 * the brokers gone the worker would answer no stop or shutdown meanwhile.
 * A metadata request ends at its timeout.
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
 * Do the brokers answer (a metadata request, within PROBE_TIMEOUT_MS)?  Asked
 * at most every PROBE_INTERVAL_MS: *asked says whether they were now.
 */
static bool
brokers_answer(KafkaWorker *w, bool *asked, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_metadata *md;

	*asked = TimestampDifferenceExceeds(w->lag_checked_at, GetCurrentTimestamp(),
										PROBE_INTERVAL_MS);
	if (!*asked)
		return false;
	*err = rd_kafka_metadata(w->rk, 0, NULL, &md, PROBE_TIMEOUT_MS);
	w->lag_checked_at = GetCurrentTimestamp();
	if (*err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	rd_kafka_metadata_destroy(md);
	return true;
}

/* Ask a retrying consumer's brokers whether they are back; true when they are. */
static bool
probe_brokers(KafkaWorker *w)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	bool		asked;
	bool		ok = brokers_answer(w, &asked, &err);

	if (!asked)
		return false;
	if (!ok && !w->lag_failing)
	{
		char		what[256];

		snprintf(what, sizeof(what), "could not reach the brokers of topic \"%s\": %s",
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
	bool		back = retrying && probe_brokers(w);
	bool		known;
	int64		lag = 0;

	/* while retrying, the watermarks librdkafka kept are stale */
	known = (!retrying || back) && cached_lag(w, &lag);

	SpinLockAcquire(&w->slot->mutex);
	w->slot->lag = known ? lag : 0;
	w->slot->lag_known = known;
	if (back)
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
	rd_kafka_resp_err_t err;
	bool		asked;

	if (kafka_brokers_failing(w) && brokers_answer(w, &asked, &err))
		kafka_slot_set_state(w->slot, "running");
}
