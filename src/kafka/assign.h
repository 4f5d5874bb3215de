/*
 * assign.h
 *	  Which partitions a consumer worker reads, and from which offsets.
 */
#ifndef STREAM_EXT_KAFKA_ASSIGN_H
#define STREAM_EXT_KAFKA_ASSIGN_H

#include <librdkafka/rdkafka.h>

/* Partitions assigned to this worker and the next offset it expects of each */
extern int	kafka_nassigned;
extern int32 *kafka_assigned_partitions;
extern int64 *kafka_assigned_next;
extern int	kafka_topic_partition_count;
extern bool kafka_assignment_revoked;	/* in group mode, since the batch began */
extern bool kafka_assignment_failed;

extern int	kafka_assigned_index(int32 partition);
extern int	kafka_topic_partitions(void);
extern void kafka_assign_static(void);
extern void kafka_rebalance_cb(rd_kafka_t *r, rd_kafka_resp_err_t err,
							   rd_kafka_topic_partition_list_t *partitions, void *opaque);

#endif
