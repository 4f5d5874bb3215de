/*
 * outbox_settle.h
 *	  Settling the writers of the outbox rows that batch workers staged.
 */
#ifndef STREAM_EXT_KAFKA_OUTBOX_SETTLE_H
#define STREAM_EXT_KAFKA_OUTBOX_SETTLE_H

extern void kafka_outbox_settle_init(void);

#endif
