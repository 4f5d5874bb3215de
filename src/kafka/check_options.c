/*
 * check_options.c
 *	  A librdkafka option checked when a consumer or producer is configured,
 *	  not first by its worker: it is set on a configuration object that is
 *	  then thrown away, so that an unknown name or a value librdkafka refuses
 *	  is reported to the caller of kafka_consume / kafka_produce instead of in
 *	  the worker's retries.
 */
#include "postgres.h"

#include <ctype.h>

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(stream_ext_kafka_check_librdkafka_option);

/*
 * kafka_check_librdkafka_option(name text, value text): raises 22023 when
 * librdkafka does not accept value for name (the workers give it the
 * option's text the same way).  plugin.library.paths is not tried: setting
 * it loads the libraries at once, which belongs in the worker (only
 * superusers may set it).
 */
Datum
stream_ext_kafka_check_librdkafka_option(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;

	if (strcmp(name, "plugin.library.paths") == 0)
		PG_RETURN_VOID();

	/* malloc'd by librdkafka: destroyed before any ereport */
	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
	rd_kafka_conf_destroy(conf);

	if (res != RD_KAFKA_CONF_OK)
	{
		size_t		len = strlen(errstr);

		while (len > 0 && isspace((unsigned char) errstr[len - 1]))
			errstr[--len] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid librdkafka option \"%s\"", name),
				 errdetail_internal("%s", errstr),
				 errhint("librdkafka's CONFIGURATION.md lists its options and their values.")));
	}
	PG_RETURN_VOID();
}
