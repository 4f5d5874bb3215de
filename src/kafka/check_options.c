/*
 * check_options.c
 *	  A librdkafka option checked when a consumer or producer is configured,
 *	  not first by its worker: it is set on a configuration object that is
 *	  then thrown away, so that an unknown name or a value librdkafka refuses
 *	  is reported to the caller of kafka_consume / kafka_produce instead of in
 *	  the worker's retries.
 *
 * Only the options librdkafka documents (those rd_kafka_conf_properties_show
 * lists) are taken.  It also has hidden ones for its own tests, which
 * rd_kafka_conf_set accepts too: ut_handle_ProduceResponse takes the
 * address of the string it is given as a function to call, which crashes
 * the server.  The workers refuse them as well (kafka_set_conf), so that an
 * option stored before this check cannot reach librdkafka either.
 */
#include "postgres.h"

#include <ctype.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "kafka/check_options.h"

PG_FUNCTION_INFO_V1(stream_ext_kafka_check_librdkafka_option);

/* librdkafka's table of its documented options, read once (malloc'd) */
static char *documented = NULL;

/*
 * Is name one of the options librdkafka documents (a row of its table
 * whose first column is name)?
 */
bool
kafka_option_is_documented(const char *name)
{
	size_t		len = strlen(name);
	const char *line;

	if (documented == NULL)
	{
		char	   *buf = NULL;
		size_t		size = 0;
		FILE	   *f = open_memstream(&buf, &size);

		if (f == NULL)
			elog(ERROR, "could not list librdkafka's options: %m");
		rd_kafka_conf_properties_show(f);
		fclose(f);
		documented = buf;
	}
	if (len == 0)
		return false;
	for (line = documented; line != NULL; line = strchr(line, '\n'))
	{
		const char *p;

		if (*line == '\n')
			line++;
		p = line + len;
		if (strncmp(line, name, len) != 0 || (*p != ' ' && *p != '|'))
			continue;
		while (*p == ' ')
			p++;
		if (*p == '|')
			return true;
	}
	return false;
}

/*
 * Set option name of conf to value, as rd_kafka_conf_set does, if librdkafka
 * documents it; else, or when librdkafka refuses the value, false with why
 * in errstr (size bytes, without librdkafka's trailing line break).
 */
bool
kafka_conf_set_documented(rd_kafka_conf_t *conf, const char *name, const char *value,
						  char *errstr, size_t size)
{
	size_t		len;

	if (!kafka_option_is_documented(name))
	{
		strlcpy(errstr, "librdkafka does not document an option of that name.", size);
		return false;
	}
	if (rd_kafka_conf_set(conf, name, value, errstr, size) == RD_KAFKA_CONF_OK)
		return true;
	len = strlen(errstr);
	while (len > 0 && isspace((unsigned char) errstr[len - 1]))
		errstr[--len] = '\0';
	return false;
}

/*
 * kafka_check_librdkafka_option(name text, value text): raises 22023 when
 * librdkafka does not document name or accept value for it (the workers
 * give it the option's text the same way).  plugin.library.paths is not
 * tried: setting it loads the libraries at once, which belongs in the
 * worker (only superusers may set it).
 */
Datum
stream_ext_kafka_check_librdkafka_option(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char		errstr[512];
	rd_kafka_conf_t *conf;
	bool		ok;

	if (strcmp(name, "plugin.library.paths") == 0)
		PG_RETURN_VOID();

	/* malloc'd by librdkafka: destroyed before any ereport */
	conf = rd_kafka_conf_new();
	ok = kafka_conf_set_documented(conf, name, value, errstr, sizeof(errstr));
	rd_kafka_conf_destroy(conf);

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid librdkafka option \"%s\"", name),
				 errdetail_internal("%s", errstr),
				 errhint("librdkafka's CONFIGURATION.md lists its options and their values.")));
	PG_RETURN_VOID();
}
