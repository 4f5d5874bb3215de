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
 * Options no one may give (superusers included), because the worker's own
 * settings or the process it runs in depend on them: why, or NULL.
 */
typedef struct RefusedOption
{
	const char *name;
	bool		producer;		/* refused for producers (else consumers) */
	bool		consumer;
	const char *why;
} RefusedOption;

#define SIGNALS_WHY "It makes librdkafka take over a signal of the server's process, which PostgreSQL's own handling of that signal (shutdown, cancel, timeouts) needs."
#define IDEMPOTENT_WHY "The producer is idempotent (enable.idempotence: acknowledged by all in-sync replicas, retried without duplicates or reordering) and needs a delivery report for every message; this option would change that or keep the producer from starting."
#define OFFSETS_WHY "The consumer keeps its offsets in PostgreSQL, committed with the events, and sets this option itself; use kafka_consume's group_id for a consumer group."

#define GROUP_WHY "The consumer's workers join the group under one id and take and give back their partitions whole (the eager protocol), which this option would change."

static const RefusedOption refused_options[] = {
	{"internal.termination.signal", true, true, SIGNALS_WHY},
	{"enable.idempotence", true, false, IDEMPOTENT_WHY},
	{"acks", true, false, IDEMPOTENT_WHY},
	{"request.required.acks", true, false, IDEMPOTENT_WHY},
	{"max.in.flight.requests.per.connection", true, false, IDEMPOTENT_WHY},
	{"max.in.flight", true, false, IDEMPOTENT_WHY},
	{"retries", true, false, IDEMPOTENT_WHY},
	{"message.send.max.retries", true, false, IDEMPOTENT_WHY},
	{"queuing.strategy", true, false, IDEMPOTENT_WHY},
	{"transactional.id", true, false, IDEMPOTENT_WHY},
	{"delivery.report.only.error", true, false, IDEMPOTENT_WHY},
	{"group.id", false, true, OFFSETS_WHY},
	{"enable.auto.commit", false, true, OFFSETS_WHY},
	{"auto.commit.enable", false, true, OFFSETS_WHY},
	{"enable.auto.offset.store", false, true, OFFSETS_WHY},
	{"enable.partition.eof", false, true, OFFSETS_WHY},
	{"partition.assignment.strategy", false, true, GROUP_WHY},
	{"group.instance.id", false, true, GROUP_WHY},
	{"group.protocol", false, true, GROUP_WHY},
};

const char *
kafka_option_refused(const char *name, bool producer)
{
	for (int i = 0; i < lengthof(refused_options); i++)
		if (pg_strcasecmp(name, refused_options[i].name) == 0 &&
			(producer ? refused_options[i].producer : refused_options[i].consumer))
			return refused_options[i].why;
	return NULL;
}

/*
 * kafka_check_librdkafka_option(name text, value text, producer boolean):
 * raises 22023 when a producer (or a consumer) may not be given option name
 * (kafka_option_refused), or librdkafka does not document name or accept
 * value for it (the workers give it the option's text the same way).
 * plugin.library.paths is not tried: setting it loads the libraries at
 * once, which belongs in the worker (only superusers may set it).
 */
Datum
stream_ext_kafka_check_librdkafka_option(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		producer = PG_GETARG_BOOL(2);
	const char *refused = kafka_option_refused(name, producer);
	char		errstr[512];
	rd_kafka_conf_t *conf;
	bool		ok;

	if (refused != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("librdkafka option \"%s\" cannot be set for a Kafka %s", name,
						producer ? "producer" : "consumer"),
				 errdetail("%s", refused)));
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
