/*
 * decode.c
 *	  Decode Kafka messages into events of a stream.
 *
 * json: the message is one JSON object; its top-level fields go by name to
 * the stream's columns (missing fields are NULL, extra fields are ignored);
 * each value's text goes through the column type's input function (nested
 * objects and arrays as their JSON text).  The JSON lexer reports syntax
 * errors without throwing.
 *
 * csv and text: each line of the message is one event, its fields in the
 * order of the stream's columns, split and unquoted as COPY does for the same
 * format and options (delimiter, quote, escape, null, header: the first line
 * of every message is skipped).
 *
 * The message key, partition, offset and timestamp may go to columns of
 * their own; those columns and arrival_timestamp take no field.
 *
 * kafka_decode returns an error message for a message that does not have
 * the expected shape, and throws when an input function rejects a value;
 * the caller (consumer.c) catches that per message.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "agg/agg_state.h"
#include "kafka/decode.h"
#include "stream/fast_input.h"
#include "stream/insert.h"

struct KafkaDecoder
{
	KafkaFormatOptions opts;
	TupleDesc	desc;
	int			natts;
	int			arrival_attno;	/* 0-based attribute indexes, -1 for none */
	int			key_att;
	int			partition_att;
	int			offset_att;
	int			timestamp_att;
	int			nfields;		/* columns fed from the payload */
	int		   *field_att;		/* their attribute indexes, in order */
	char	  **field_name;
	int		   *field_name_len;
	char	  **pending_end;	/* json fast path: where a literal ends */
	bool	   *field_is_json;
	FmgrInfo   *in_funcs;		/* per attribute */
	Oid		   *ioparams;
	int32	   *typmods;
	Datum	   *values;
	bool	   *nulls;
	char	  **raw;			/* per field: its text, or NULL */
	StringInfoData buf;			/* field text of csv/text lines */
	int		   *raw_off;		/* per field: offset into buf, -1 for NULL */
	int			null_len;		/* strlen(opts.null_string) */
};

static int
column_att(TupleDesc desc, const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("stream has no column \"%s\"", name)));
	return -1;
}

/*
 * Build a decoder for the stream's current columns, in the current memory
 * context.
 */
KafkaDecoder *
kafka_decoder_create(Relation stream, const KafkaFormatOptions *opts)
{
	KafkaDecoder *d = palloc0(sizeof(KafkaDecoder));
	TupleDesc	desc = CreateTupleDescCopy(RelationGetDescr(stream));

	d->opts = *opts;
	d->null_len = strlen(opts->null_string);
	d->desc = desc;
	d->natts = desc->natts;
	d->arrival_attno = stream_arrival_attno(stream) - 1;
	d->key_att = column_att(desc, opts->key_column);
	d->partition_att = column_att(desc, opts->partition_column);
	d->offset_att = column_att(desc, opts->offset_column);
	d->timestamp_att = column_att(desc, opts->timestamp_column);
	d->in_funcs = palloc0(sizeof(FmgrInfo) * d->natts);
	d->ioparams = palloc0(sizeof(Oid) * d->natts);
	d->typmods = palloc0(sizeof(int32) * d->natts);
	d->values = palloc0(sizeof(Datum) * d->natts);
	d->nulls = palloc0(sizeof(bool) * d->natts);
	d->field_att = palloc0(sizeof(int) * d->natts);
	d->field_name = palloc0(sizeof(char *) * d->natts);
	d->field_name_len = palloc0(sizeof(int) * d->natts);
	d->pending_end = palloc0(sizeof(char *) * d->natts);
	d->field_is_json = palloc0(sizeof(bool) * d->natts);
	d->raw = palloc0(sizeof(char *) * d->natts);
	d->raw_off = palloc0(sizeof(int) * d->natts);
	initStringInfo(&d->buf);

	for (int i = 0; i < d->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			infunc;

		if (att->attisdropped)
			continue;
		if (stream_type_holds_agg_state(att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of stream \"%s\" cannot be read from Kafka",
							NameStr(att->attname), RelationGetRelationName(stream)),
					 errdetail("Its type %s holds partial aggregate states, which only a superuser may enter.",
							   format_type_be(att->atttypid))));
		getTypeInputInfo(att->atttypid, &infunc, &d->ioparams[i]);
		fmgr_info(infunc, &d->in_funcs[i]);
		stream_fast_input_install(&d->in_funcs[i], att->atttypid);
		d->typmods[i] = att->atttypmod;
		if (i == d->arrival_attno || i == d->key_att || i == d->partition_att ||
			i == d->offset_att || i == d->timestamp_att)
			continue;
		d->field_att[d->nfields] = i;
		d->field_name[d->nfields] = pstrdup(NameStr(att->attname));
		d->field_name_len[d->nfields] = strlen(NameStr(att->attname));
		d->field_is_json[d->nfields] = (att->atttypid == JSONOID || att->atttypid == JSONBOID);
		d->nfields++;
	}
	return d;
}

TupleDesc
kafka_decoder_desc(KafkaDecoder *d)
{
	return d->desc;
}

/* Whether messages' Kafka timestamps go to a column (else they need not be read). */
bool
kafka_decoder_wants_timestamp(KafkaDecoder *d)
{
	return d->timestamp_att >= 0;
}

static void
set_value(KafkaDecoder *d, int att, char *text)
{
	if (text == NULL)
	{
		d->values[att] = (Datum) 0;
		d->nulls[att] = true;
		return;
	}
	d->values[att] = InputFunctionCall(&d->in_funcs[att], text, d->ioparams[att],
									   d->typmods[att]);
	d->nulls[att] = false;
}

/* Fill the metadata columns and emit the event made of d->raw. */
static void
emit_event(KafkaDecoder *d, const KafkaMessageView *msg, TimestampTz arrival,
		   KafkaEventSink sink, void *arg)
{
	for (int i = 0; i < d->natts; i++)
		d->nulls[i] = true;
	for (int f = 0; f < d->nfields; f++)
		set_value(d, d->field_att[f], d->raw[f]);
	if (d->arrival_attno >= 0)
	{
		d->values[d->arrival_attno] = TimestampTzGetDatum(arrival);
		d->nulls[d->arrival_attno] = false;
	}
	if (d->key_att >= 0)
		set_value(d, d->key_att, msg->key ? pnstrdup(msg->key, msg->key_len) : NULL);
	if (d->partition_att >= 0)
		set_value(d, d->partition_att, psprintf("%d", msg->partition));
	if (d->offset_att >= 0)
		set_value(d, d->offset_att, psprintf(INT64_FORMAT, msg->offset));
	if (d->timestamp_att >= 0)
	{
		if (msg->timestamp_ms < 0)
			set_value(d, d->timestamp_att, NULL);
		else
		{
			/* Unix milliseconds to a timestamptz literal the column type reads */
			int64		us;
			TimestampTz ts;

			/* a forged time past int64's microseconds: wrapped, it would pass */
			if (pg_mul_s64_overflow(msg->timestamp_ms, 1000, &us))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("Kafka message timestamp %lld ms is out of range",
								(long long) msg->timestamp_ms)));
			ts = us - ((TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);

			set_value(d, d->timestamp_att,
					  DatumGetCString(DirectFunctionCall1(timestamptz_out,
														  TimestampTzGetDatum(ts))));
		}
	}
	sink(d->desc, d->values, d->nulls, arg);
}

/* ---- json ---- */

typedef struct JsonDecodeState
{
	KafkaDecoder *d;
	JsonLexContext *lex;
	int			depth;
	int			field;			/* wanted top-level field being read, or -1 */
	const char *nested_start;	/* start of a nested value of that field */
	const char *error;
} JsonDecodeState;

static void
json_object_start(void *state)
{
	JsonDecodeState *s = state;

	if (s->depth == 1 && s->field >= 0)
		s->nested_start = s->lex->token_start;
	s->depth++;
}

static void
json_object_end(void *state)
{
	JsonDecodeState *s = state;

	s->depth--;
	if (s->depth == 1 && s->field >= 0 && s->nested_start != NULL)
	{
		/* the parser calls this with the next token lexed: the value ends before it */
		s->d->raw[s->field] = pnstrdup(s->nested_start,
									   s->lex->prev_token_terminator - s->nested_start);
		s->nested_start = NULL;
	}
}

static void
json_array_start(void *state)
{
	JsonDecodeState *s = state;

	if (s->depth == 0)
		s->error = "message is a JSON array, not an object";
	json_object_start(state);
}

static void
json_field_start(void *state, char *fname, bool isnull)
{
	JsonDecodeState *s = state;

	/* the keys of a nested value are part of that value */
	if (s->depth != 1)
		return;
	s->field = -1;
	for (int f = 0; f < s->d->nfields; f++)
	{
		if (strcmp(fname, s->d->field_name[f]) == 0)
		{
			s->field = f;
			return;
		}
	}
}

static void
json_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JsonDecodeState *s = state;
	int			f = s->field;

	if (s->depth == 0)
	{
		s->error = "message is a JSON scalar, not an object";
		return;
	}
	if (s->depth != 1 || f < 0)
		return;
	if (tokentype == JSON_TOKEN_NULL)
		s->d->raw[f] = NULL;
	else if (tokentype == JSON_TOKEN_STRING && s->d->field_is_json[f])
	{
		StringInfoData q;

		initStringInfo(&q);
		escape_json(&q, token);
		s->d->raw[f] = q.data;
	}
	else
		s->d->raw[f] = token;
}

/*
 * Fast path for the common message: one flat object whose values are
 * strings, numbers, true, false or null, with no \u escapes.  Fills d->raw
 * as the general path does and returns true; returns false for anything
 * else (nested values, \u escapes, invalid JSON), which the general path
 * (PostgreSQL's JSON parser) then decodes or rejects with its own message.
 */
#define JSON_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

/*
 * A string at *pp (after its opening quote), in the writable copy of the
 * message: without escapes it is terminated in place (its closing quote
 * becomes NUL: the scanner is past it); with escapes it is unescaped into a
 * new string.  NULL when not a plain JSON string.
 */
static char *
fast_json_string(char **pp, char *end, int *len)
{
	char	   *p = *pp;
	char	   *start = p;
	StringInfoData buf;
	bool		escaped = false;

	while (p < end && *p != '"')
	{
		if (*p == '\\')
		{
			escaped = true;
			p += 2;
		}
		else if ((unsigned char) *p < 0x20)
			return NULL;
		else
			p++;
	}
	if (p >= end)
		return NULL;
	*pp = p + 1;
	if (!escaped)
	{
		*p = '\0';
		*len = p - start;
		return start;
	}

	initStringInfo(&buf);
	for (const char *s = start; s < p; s++)
	{
		char		c = *s;

		if (c == '\\')
		{
			switch (*++s)
			{
				case '"': c = '"'; break;
				case '\\': c = '\\'; break;
				case '/': c = '/'; break;
				case 'b': c = '\b'; break;
				case 'f': c = '\f'; break;
				case 'n': c = '\n'; break;
				case 'r': c = '\r'; break;
				case 't': c = '\t'; break;
				default: return NULL;	/* \u and invalid escapes */
			}
		}
		appendStringInfoChar(&buf, c);
	}
	*len = buf.len;
	return buf.data;
}

/*
 * A JSON number, true, false or null at *pp: its start, with *term set to
 * where it ends (to be terminated once the whole object has been scanned:
 * the scanner reads that character next), or NULL.
 */
static char *
fast_json_literal(char **pp, char *end, bool *isnull, char **term)
{
	char	   *p = *pp;
	char	   *start = p;

	*isnull = false;
	if (end - p >= 4 && memcmp(p, "null", 4) == 0)
	{
		*isnull = true;
		p += 4;
	}
	else if (end - p >= 4 && memcmp(p, "true", 4) == 0)
		p += 4;
	else if (end - p >= 5 && memcmp(p, "false", 5) == 0)
		p += 5;
	else
	{
		if (p < end && *p == '-')
			p++;
		if (p < end && *p == '0')
			p++;
		else if (p < end && *p >= '1' && *p <= '9')
			while (p < end && isdigit((unsigned char) *p))
				p++;
		else
			return NULL;
		if (p < end && *p == '.')
		{
			p++;
			if (p >= end || !isdigit((unsigned char) *p))
				return NULL;
			while (p < end && isdigit((unsigned char) *p))
				p++;
		}
		if (p < end && (*p == 'e' || *p == 'E'))
		{
			p++;
			if (p < end && (*p == '+' || *p == '-'))
				p++;
			if (p >= end || !isdigit((unsigned char) *p))
				return NULL;
			while (p < end && isdigit((unsigned char) *p))
				p++;
		}
	}
	/* a literal ends at white space, a comma or the closing brace */
	if (p < end && !JSON_WS(*p) && *p != ',' && *p != '}')
		return NULL;
	*pp = p;
	*term = p;
	return start;
}

/*
 * Scan a copy of the message (NUL-terminated, so that values can be
 * terminated in place and passed to input functions without copying).
 */
static bool
fast_decode_json(KafkaDecoder *d, const char *payload, size_t len)
{
	char	   *p = palloc(len + 1);
	char	   *end = p + len;

	memcpy(p, payload, len);
	*end = '\0';
	for (int f = 0; f < d->nfields; f++)
	{
		d->raw[f] = NULL;
		d->pending_end[f] = NULL;
	}
	while (p < end && JSON_WS(*p))
		p++;
	if (p >= end || *p++ != '{')
		return false;
	while (p < end && JSON_WS(*p))
		p++;
	if (p < end && *p == '}')
		p++;
	else
	{
		for (;;)
		{
			char	   *name;
			int			name_len;
			char	   *value;
			int			value_len;
			char	   *term = NULL;
			bool		isnull;
			bool		is_string;
			int			field = -1;

			if (p >= end || *p++ != '"' || (name = fast_json_string(&p, end, &name_len)) == NULL)
				return false;
			while (p < end && JSON_WS(*p))
				p++;
			if (p >= end || *p++ != ':')
				return false;
			while (p < end && JSON_WS(*p))
				p++;
			if (p >= end)
				return false;
			is_string = (*p == '"');
			if (is_string)
			{
				p++;
				isnull = false;
				value = fast_json_string(&p, end, &value_len);
			}
			else
				value = fast_json_literal(&p, end, &isnull, &term);
			if (value == NULL)
				return false;
			for (int f = 0; f < d->nfields; f++)
			{
				if (name_len == d->field_name_len[f] &&
					memcmp(name, d->field_name[f], name_len) == 0)
				{
					field = f;
					break;
				}
			}
			if (field >= 0)
			{
				d->pending_end[field] = term;
				if (isnull)
					d->raw[field] = NULL;
				else if (is_string && d->field_is_json[field])
					return false;	/* a JSON string for a json column: general path */
				else
					d->raw[field] = value;
			}
			while (p < end && JSON_WS(*p))
				p++;
			if (p < end && *p == ',')
			{
				p++;
				while (p < end && JSON_WS(*p))
					p++;
				continue;
			}
			if (p < end && *p == '}')
			{
				p++;
				break;
			}
			return false;
		}
	}
	while (p < end && JSON_WS(*p))
		p++;
	if (p != end)
		return false;
	for (int f = 0; f < d->nfields; f++)
		if (d->pending_end[f] != NULL)
			*d->pending_end[f] = '\0';
	return true;
}

static char *
decode_json(KafkaDecoder *d, const KafkaMessageView *msg, TimestampTz arrival,
			KafkaEventSink sink, void *arg)
{
	JsonDecodeState state;
	JsonSemAction sem;
	JsonParseErrorType rc;

	if (fast_decode_json(d, msg->payload, msg->len))
	{
		emit_event(d, msg, arrival, sink, arg);
		return NULL;
	}

	memset(&state, 0, sizeof(state));
	memset(&sem, 0, sizeof(sem));
	state.d = d;
	state.field = -1;
	state.lex = makeJsonLexContextCstringLen((char *) msg->payload, (int) msg->len,
											 GetDatabaseEncoding(), true);
	sem.semstate = &state;
	sem.object_start = json_object_start;
	sem.object_end = json_object_end;
	sem.array_start = json_array_start;
	sem.array_end = json_object_end;
	sem.object_field_start = json_field_start;
	sem.scalar = json_scalar;
	for (int f = 0; f < d->nfields; f++)
		d->raw[f] = NULL;

	rc = pg_parse_json(state.lex, &sem);
	if (rc != JSON_SUCCESS)
		return psprintf("invalid JSON: %s", json_errdetail(rc, state.lex));
	if (state.error != NULL)
		return pstrdup(state.error);
	emit_event(d, msg, arrival, sink, arg);
	return NULL;
}

/* ---- csv and text ---- */

/* Is this field text the null string? */
static bool
is_null_string(KafkaDecoder *d, const char *field, int len)
{
	return len == d->null_len && memcmp(field, d->opts.null_string, len) == 0;
}

/*
 * Close field *nf of the line, which starts at offset start of d->buf: NULL
 * or its text, terminated.  Returns an error when the line has too many.
 */
static char *
end_field(KafkaDecoder *d, int *nf, int start, bool is_null)
{
	if (*nf >= d->nfields)
		return pstrdup("extra data after last expected column");
	d->raw_off[*nf] = is_null ? -1 : start;
	appendStringInfoChar(&d->buf, '\0');
	(*nf)++;
	return NULL;
}

/* A line of nf fields: an error when it has too few. */
static char *
end_line(KafkaDecoder *d, int nf)
{
	if (nf < d->nfields)
		return psprintf("missing data for column \"%s\"", d->field_name[nf]);
	return NULL;
}

/*
 * Split one csv line starting at *pp (ending before end) into d->raw, as
 * COPY ... (FORMAT csv) does.  Advances *pp past the line's newline.
 */
static char *
split_csv_line(KafkaDecoder *d, const char **pp, const char *end)
{
	const char *p = *pp;
	char		delim = d->opts.delimiter,
				quote = d->opts.quote,
				escape = d->opts.escape;
	int			nf = 0;
	bool		line_done = false;
	char	   *err;

	resetStringInfo(&d->buf);
	while (!line_done)
	{
		bool		quoted = false;
		int			start = d->buf.len;

		for (;;)
		{
			if (p >= end)
			{
				line_done = true;
				break;
			}
			if (*p == quote)
			{
				quoted = true;
				p++;
				for (;;)
				{
					if (p >= end)
						return pstrdup("unterminated CSV quoted field");
					if (*p == escape && p + 1 < end &&
						(p[1] == quote || p[1] == escape) && (escape != quote || p[1] == quote))
					{
						appendStringInfoChar(&d->buf, p[1]);
						p += 2;
						continue;
					}
					if (*p == quote)
					{
						p++;
						break;
					}
					{
						const char *run = p++;

						while (p < end && *p != quote && *p != escape)
							p++;
						appendBinaryStringInfo(&d->buf, run, p - run);
					}
				}
				continue;
			}
			if (*p == delim)
			{
				p++;
				break;
			}
			if (*p == '\n' || *p == '\r')
			{
				if (*p == '\r' && p + 1 < end && p[1] == '\n')
					p++;
				p++;
				line_done = true;
				break;
			}
			/* a run of ordinary characters at once */
			{
				const char *run = p;

				while (p < end && *p != delim && *p != quote && *p != '\n' && *p != '\r')
					p++;
				appendBinaryStringInfo(&d->buf, run, p - run);
			}
		}
		/* an unquoted field equal to the null string is NULL */
		err = end_field(d, &nf, start,
						!quoted && is_null_string(d, d->buf.data + start, d->buf.len - start));
		if (err)
			return err;
	}
	*pp = p;
	return end_line(d, nf);
}

/* The value of a hex digit */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/* The same for text format: backslash escapes, no quoting. */
static char *
split_text_line(KafkaDecoder *d, const char **pp, const char *end)
{
	const char *p = *pp;
	char		delim = d->opts.delimiter;
	int			nf = 0;
	bool		line_done = false;
	bool		saw_escaped_byte = false;
	char	   *err;

	resetStringInfo(&d->buf);
	while (!line_done)
	{
		int			start = d->buf.len;
		const char *raw_start = p;
		const char *raw_end;

		for (;;)
		{
			if (p >= end || *p == '\n' || *p == '\r')
			{
				raw_end = p;
				if (p < end && *p == '\r' && p + 1 < end && p[1] == '\n')
					p++;
				if (p < end)
					p++;
				line_done = true;
				break;
			}
			if (*p == delim)
			{
				raw_end = p;
				p++;
				break;
			}
			if (*p == '\\' && p + 1 < end)
			{
				char		c = p[1];

				p += 2;
				switch (c)
				{
					case 'b': c = '\b'; break;
					case 'f': c = '\f'; break;
					case 'n': c = '\n'; break;
					case 'r': c = '\r'; break;
					case 't': c = '\t'; break;
					case 'v': c = '\v'; break;
					case '0': case '1': case '2': case '3':
					case '4': case '5': case '6': case '7':
						{
							/* \ and one to three octal digits, as COPY reads them */
							int			val = c - '0';

							for (int i = 0; i < 2 && p < end && *p >= '0' && *p <= '7'; i++)
								val = (val << 3) + (*p++ - '0');
							c = (char) (val & 0xff);
							saw_escaped_byte |= IS_HIGHBIT_SET(c) || c == '\0';
						}
						break;
					case 'x':
						/* \x and one or two hex digits; else a plain x */
						if (p < end && isxdigit((unsigned char) *p))
						{
							int			val = hexval(*p++);

							if (p < end && isxdigit((unsigned char) *p))
								val = (val << 4) + hexval(*p++);
							c = (char) (val & 0xff);
							saw_escaped_byte |= IS_HIGHBIT_SET(c) || c == '\0';
						}
						break;
					default: break;
				}
				appendStringInfoChar(&d->buf, c);
				continue;
			}
			{
				const char *run = p++;

				while (p < end && *p != delim && *p != '\\' && *p != '\n' && *p != '\r')
					p++;
				appendBinaryStringInfo(&d->buf, run, p - run);
			}
		}
		/* bytes given as escapes must still make text of the database's encoding (no NUL) */
		if (saw_escaped_byte &&
			!pg_verifymbstr(d->buf.data + start, d->buf.len - start, true))
			return psprintf("invalid byte sequence for encoding \"%s\" in field %d",
							GetDatabaseEncodingName(), nf + 1);
		saw_escaped_byte = false;
		/* the null string is compared with the field before de-escaping */
		err = end_field(d, &nf, start, is_null_string(d, raw_start, raw_end - raw_start));
		if (err)
			return err;
	}
	*pp = p;
	return end_line(d, nf);
}

static char *
decode_lines(KafkaDecoder *d, const KafkaMessageView *msg, TimestampTz arrival,
			 KafkaEventSink sink, void *arg)
{
	const char *p = msg->payload;
	const char *end = msg->payload + msg->len;
	bool		first = true;

	/* a final newline ends the last line; it does not start an empty one */
	while (p < end)
	{
		const char *line = p;
		char	   *error;

		if (d->opts.format == KAFKA_FORMAT_CSV)
			error = split_csv_line(d, &p, end);
		else
			error = split_text_line(d, &p, end);
		if (first && d->opts.header)
		{
			/* a header that does not split (more fields, say): to its newline */
			if (error != NULL)
			{
				const char *nl = memchr(line, '\n', end - line);

				p = nl ? nl + 1 : end;
			}
			first = false;
			continue;
		}
		first = false;
		if (error != NULL)
			return error;
		for (int f = 0; f < d->nfields; f++)
			d->raw[f] = d->raw_off[f] < 0 ? NULL : d->buf.data + d->raw_off[f];
		emit_event(d, msg, arrival, sink, arg);
	}
	if (msg->len == 0)
		return pstrdup("empty message");
	return NULL;
}

/*
 * Decode one message into events, passed to sink.  Returns NULL, or why the
 * message does not have the expected shape (then some of its events may
 * have been passed already: the caller drops them).  Throws when a value
 * does not fit its column's type.  Allocates in the current memory context.
 */
char *
kafka_decode(KafkaDecoder *d, const KafkaMessageView *msg, TimestampTz arrival,
			 KafkaEventSink sink, void *arg)
{
	if (msg->payload == NULL)
		return pstrdup("message has no payload");
	if (!pg_verifymbstr(msg->payload, (int) msg->len, true))
		return psprintf("invalid byte sequence for encoding \"%s\"",
						GetDatabaseEncodingName());
	if (msg->key != NULL && d->key_att >= 0 &&
		!pg_verifymbstr(msg->key, (int) msg->key_len, true))
		return psprintf("invalid byte sequence for encoding \"%s\" in the message key",
						GetDatabaseEncodingName());
	if (d->opts.format == KAFKA_FORMAT_JSON)
		return decode_json(d, msg, arrival, sink, arg);
	return decode_lines(d, msg, arrival, sink, arg);
}
