/*
 * check_options.h
 *	  Which librdkafka options a consumer or producer may be given.
 */
#ifndef STREAM_EXT_KAFKA_CHECK_OPTIONS_H
#define STREAM_EXT_KAFKA_CHECK_OPTIONS_H

#include <librdkafka/rdkafka.h>

extern bool kafka_option_is_documented(const char *name);

/*
 * Why a producer (or a consumer) may not be given option name, whoever
 * gives it: the worker sets it itself or depends on it; NULL when it may.
 */
extern const char *kafka_option_refused(const char *name, bool producer);
extern bool kafka_conf_set_documented(rd_kafka_conf_t *conf, const char *name,
									  const char *value, char *errstr, size_t size);

#endif
