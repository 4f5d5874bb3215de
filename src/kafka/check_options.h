/*
 * check_options.h
 *	  Which librdkafka options a consumer or producer may be given.
 */
#ifndef STREAM_EXT_KAFKA_CHECK_OPTIONS_H
#define STREAM_EXT_KAFKA_CHECK_OPTIONS_H

extern bool kafka_option_is_documented(const char *name);

#endif
