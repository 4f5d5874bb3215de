/*
 * mapped_columns.h
 *	  A stream's columns a Kafka consumer maps keep their names
 *	  (mapped_columns.c).
 */
#ifndef STREAM_EXT_KAFKA_MAPPED_COLUMNS_H
#define STREAM_EXT_KAFKA_MAPPED_COLUMNS_H

extern void kafka_mapped_columns_init(void);

#endif
