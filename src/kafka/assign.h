/*
 * assign.h
 *	  Which partitions a consumer worker reads, and from which offsets.
 */
#ifndef STREAM_EXT_KAFKA_ASSIGN_H
#define STREAM_EXT_KAFKA_ASSIGN_H

#include <librdkafka/rdkafka.h>

#include "kafka/kafka_worker.h"

extern int	kafka_assigned_index(KafkaWorker *w, int32 partition);
extern int	kafka_topic_partitions(KafkaWorker *w);
extern rd_kafka_resp_err_t kafka_partition_offsets(KafkaWorker *w, int n, const int32 *parts,
												   int64 at, int64 *offsets,
												   rd_kafka_resp_err_t *errs);
extern void kafka_assign_static(KafkaWorker *w);
extern void kafka_rebalance_cb(rd_kafka_t *r, rd_kafka_resp_err_t err,
							   rd_kafka_topic_partition_list_t *partitions, void *opaque);

#endif
