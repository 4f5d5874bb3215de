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
 * asks the brokers for the metadata of its topic.  When they answer and
 * each of its partitions has a leader, the worker is "running" at once,
 * without waiting for a message, and its lag is known again from the
 * watermarks its fetches bring; when they do not, the error is shown as
 * last_error (logged once per outage and cause).  Not by asking
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
 * What metadata topic (NULL: not in it) says of partition part: no error
 * when it has a leader, else why not.
 */
static rd_kafka_resp_err_t
partition_leader_error(const rd_kafka_metadata_topic_t *topic, int32 part)
{
	if (topic == NULL)
		return RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	if (topic->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return topic->err;
	for (int p = 0; p < topic->partition_cnt; p++)
		if (topic->partitions[p].id == part)
			return topic->partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR ?
				topic->partitions[p].err :
				topic->partitions[p].leader >= 0 ? RD_KAFKA_RESP_ERR_NO_ERROR :
				RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
	return RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
}

/*
 * The first of the worker's partitions the metadata md gives no leader (or
 * an error) for, with that error in *err; or -1 when each has one.
 */
static int32
partition_without_leader(KafkaWorker *w, const struct rd_kafka_metadata *md,
						 rd_kafka_resp_err_t *err)
{
	const rd_kafka_metadata_topic_t *topic = NULL;

	for (int t = 0; t < md->topic_cnt; t++)
		if (strcmp(md->topics[t].topic, w->cfg.topic) == 0)
			topic = &md->topics[t];
	for (int i = 0; i < w->nassigned; i++)
	{
		rd_kafka_resp_err_t e = partition_leader_error(topic, w->assigned_partitions[i]);

		if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			*err = e;
			return w->assigned_partitions[i];
		}
	}
	return -1;
}

/*
 * Do the brokers answer (a metadata request, within PROBE_TIMEOUT_MS)?  For a
 * consumer, also: does each of its partitions have a leader?
 * (One broker answering says nothing of the others.)  Asked at most every
 * PROBE_INTERVAL_MS: *asked says whether they were now.  *leaderless is the
 * partition without a leader, or -1.
 */
static bool
brokers_answer(KafkaWorker *w, bool consumer, bool *asked,
			   rd_kafka_resp_err_t *err, int32 *leaderless)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = NULL;

	*leaderless = -1;
	*asked = TimestampDifferenceExceeds(w->lag_checked_at, GetCurrentTimestamp(),
										PROBE_INTERVAL_MS);
	if (!*asked)
		return false;
	if (consumer)
		rkt = rd_kafka_topic_new(w->rk, w->cfg.topic, NULL);
	*err = rd_kafka_metadata(w->rk, 0, rkt, &md, PROBE_TIMEOUT_MS);
	w->lag_checked_at = GetCurrentTimestamp();
	if (*err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (rkt != NULL)
			*leaderless = partition_without_leader(w, md, err);
		rd_kafka_metadata_destroy(md);
	}
	if (rkt != NULL)
		rd_kafka_topic_destroy(rkt);
	/* a partition without a leader has set *err */
	return *err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Ask a retrying consumer's brokers whether they are back; true when they are. */
static bool
probe_brokers(KafkaWorker *w)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	bool		asked;
	int32		leaderless;
	bool		ok = brokers_answer(w, true, &asked, &err, &leaderless);
	int			failing = ok ? 0 : leaderless >= 0 ? 2 : 1;

	if (!asked)
		return false;
	/* reported once per outage, and again when its cause changes */
	if (failing != 0 && failing != w->lag_failing)
	{
		char		what[256];

		if (failing == 2)
			snprintf(what, sizeof(what), "partition %d of topic \"%s\" has no leader: %s",
					 leaderless, w->cfg.topic, rd_kafka_err2str(err));
		else
			snprintf(what, sizeof(what), "could not reach the brokers of topic \"%s\": %s",
					 w->cfg.topic, rd_kafka_err2str(err));
		kafka_report_problem(w, what);
	}
	w->lag_failing = failing;
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
	int32		leaderless;

	if (kafka_brokers_failing(w) && brokers_answer(w, false, &asked, &err, &leaderless))
		kafka_slot_set_state(w->slot, "running");
}
