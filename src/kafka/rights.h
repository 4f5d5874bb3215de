/*
 * rights.h
 *	  Whether the role a Kafka worker acts for may still do what it does.
 */
#ifndef STREAM_EXT_KAFKA_RIGHTS_H
#define STREAM_EXT_KAFKA_RIGHTS_H

#include "kafka/kafka_worker.h"

extern void kafka_check_rights(KafkaWorker *w, Oid role);
extern Oid	kafka_relation_owner(Oid relid);

#endif
