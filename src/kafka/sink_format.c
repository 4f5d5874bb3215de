/*
 * sink_format.c
 *	  A Kafka producer's messages formatted in C from a stream's events.
 *
 * The stage statement (sink_sql.c) formats a staged row m as
 * row_to_json(m), or as a csv or text line of m's columns cast to text
 * (kafka_csv_field, kafka_text_field), and the key as the key column cast
 * to text.  A writer that stages its own events (sink_stage.c) formats them
 * here instead, and must produce the same bytes: so only columns whose
 * types this file knows are taken (built-in scalar types and domains over
 * them; no arrays, composites or user types, whose json may go through a
 * cast, and whose output functions would be user code run in the writer),
 * and only text delimiters whose escaping reads the same char by char as
 * the statement's chain of replace() calls.  Anything else: NULL, and the
 * workers stage.
 *
 * The same settings decide the text of a value both ways: the writer
 * formats with the workers' published values of DateStyle, TimeZone,
 * extra_float_digits ... (worker/settings.c), which the producer's worker
 * has too.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "common/shortest_dec.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "kafka/sink_format.h"

/* What a column's value becomes in json (row_to_json's categories) */
typedef enum SinkJsonKind
{
	SINK_JSON_STRING,			/* the text, quoted and escaped */
	SINK_JSON_NUMBER,			/* the text bare if a JSON number, else quoted */
	SINK_JSON_BOOL,				/* true, false */
	SINK_JSON_DATETIME,			/* ISO 8601, quoted */
	SINK_JSON_RAW				/* json, jsonb: their text */
} SinkJsonKind;

/*
 * A time stamp's json text, kept for the next of the same second (events
 * come in bursts of one second): the text of the whole second and where
 * its fraction goes.
 */
typedef struct SecondText
{
	bool		valid;
	int64		second;			/* the value less its fraction */
	pg_tz	   *zone;			/* session_timezone it was written in */
	int			len;
	int			fraction_at;	/* after the seconds */
	char		text[MAXDATELEN + 1];
} SecondText;

typedef struct SinkColumn
{
	AttrNumber	attnum;			/* in the stream */
	Oid			type;			/* base type */
	SinkJsonKind kind;
	char	   *json_name;		/* "name": */
	int			json_name_len;
	FmgrInfo	out;
	SecondText	second;			/* timestamp, timestamptz */
} SinkColumn;

/* room for a number's text written without an output function */
#define NUMBER_TEXT_LEN 32

struct SinkFormat
{
	KafkaFormat format;
	char		delimiter;
	char		quote;
	char	   *null_string;
	int			ncolumns;
	SinkColumn *columns;
	int			key;			/* index in columns, or -1 */
};

void
kafka_sink_format_options(KafkaFormatOptions *f, const char *format, const char *delimiter,
						  const char *quote, const char *null_string, const char *key_column)
{
	memset(f, 0, sizeof(KafkaFormatOptions));
	f->format = strcmp(format, "json") == 0 ? KAFKA_FORMAT_JSON :
		strcmp(format, "csv") == 0 ? KAFKA_FORMAT_CSV : KAFKA_FORMAT_TEXT;
	f->delimiter = delimiter && delimiter[0] ? delimiter[0] :
		(f->format == KAFKA_FORMAT_CSV ? ',' : '\t');
	f->quote = quote && quote[0] ? quote[0] : '"';
	f->escape = f->quote;
	f->null_string = pstrdup(null_string ? null_string :
							 (f->format == KAFKA_FORMAT_CSV ? "" : "\\N"));
	f->key_column = key_column ? pstrdup(key_column) : NULL;
}

/*
 * The json kind of a built-in base type whose text is its output function's
 * (as ::text gives it, but bool's, below); false for a type not taken.
 */
static bool
known_type(Oid type, SinkJsonKind *kind)
{
	switch (type)
	{
		case BOOLOID:
			*kind = SINK_JSON_BOOL;
			return true;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			*kind = SINK_JSON_NUMBER;
			return true;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			*kind = SINK_JSON_DATETIME;
			return true;
		case JSONOID:
		case JSONBOID:
			*kind = SINK_JSON_RAW;
			return true;
		case TEXTOID:
		case VARCHAROID:
		case NAMEOID:
		case TIMEOID:
		case TIMETZOID:
		case INTERVALOID:
		case UUIDOID:
			*kind = SINK_JSON_STRING;
			return true;
		default:
			return false;
	}
}

SinkFormat *
kafka_sink_format_compile(Oid stream, const char *query_text,
						  const KafkaFormatOptions *format, MemoryContext cxt)
{
	Query	   *query = (Query *) stringToNode(query_text);
	MemoryContext old;
	SinkFormat *f;
	ListCell   *lc;
	int			i = 0;

	if (!IsA(query, Query) || list_length(query->rtable) != 1 ||
		linitial_node(RangeTblEntry, query->rtable)->relid != stream ||
		query->jointree == NULL || query->jointree->quals != NULL)
		return NULL;
	/*
	 * text: escaping char by char is the statement's replace() chain unless
	 * the delimiter is a character that chain writes (\\, n, r, t)
	 */
	/* a character of several bytes: the statement's and ours differ */
	if (IS_HIGHBIT_SET(format->delimiter) || IS_HIGHBIT_SET(format->quote))
		return NULL;
	if (format->format == KAFKA_FORMAT_TEXT &&
		(format->delimiter == '\\' || format->delimiter == 'n' ||
		 format->delimiter == 'r' || format->delimiter == 't'))
		return NULL;

	old = MemoryContextSwitchTo(cxt);
	f = palloc0(sizeof(SinkFormat));
	f->format = format->format;
	f->delimiter = format->delimiter;
	f->quote = format->quote;
	f->null_string = pstrdup(format->null_string);
	f->columns = palloc0(sizeof(SinkColumn) * Max(list_length(query->targetList), 1));
	f->key = -1;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Var		   *var = (Var *) tle->expr;
		SinkColumn *col = &f->columns[i];
		Oid			outfunc;
		bool		varlena;
		StringInfoData name;

		if (tle->resjunk)
			continue;
		if (!IsA(var, Var) || var->varno != 1 || var->varlevelsup != 0 || var->varattno <= 0 ||
			tle->resname == NULL)
		{
			MemoryContextSwitchTo(old);
			return NULL;
		}
		col->attnum = var->varattno;
		col->type = getBaseType(var->vartype);
		if (!known_type(col->type, &col->kind))
		{
			MemoryContextSwitchTo(old);
			return NULL;
		}
		getTypeOutputInfo(col->type, &outfunc, &varlena);
		fmgr_info_cxt(outfunc, &col->out, cxt);
		initStringInfo(&name);
		escape_json(&name, tle->resname);
		appendStringInfoChar(&name, ':');
		col->json_name = name.data;
		col->json_name_len = name.len;
		if (format->key_column && strcmp(format->key_column, tle->resname) == 0)
			f->key = i;
		i++;
	}
	f->ncolumns = i;
	MemoryContextSwitchTo(old);
	if (format->key_column && f->key < 0)
		return NULL;
	return f;
}

/*
 * The column's value as ::text gives it: for bool, the integers and (when
 * extra_float_digits > 0, as by default) the floats written into tmp (of
 * NUMBER_TEXT_LEN bytes) the way their output functions write it, else
 * palloc'd by the output function (free_text frees it).
 */
static char *
column_text(SinkColumn *col, Datum value, char *tmp)
{
	switch (col->type)
	{
		case BOOLOID:
			return DatumGetBool(value) ? "true" : "false";
		case INT2OID:
			pg_itoa(DatumGetInt16(value), tmp);
			return tmp;
		case INT4OID:
			pg_ltoa(DatumGetInt32(value), tmp);
			return tmp;
		case INT8OID:
			pg_lltoa(DatumGetInt64(value), tmp);
			return tmp;
		case FLOAT4OID:
			if (extra_float_digits > 0)
			{
				float_to_shortest_decimal_buf(DatumGetFloat4(value), tmp);
				return tmp;
			}
			break;
		case FLOAT8OID:
			if (extra_float_digits > 0)
			{
				double_to_shortest_decimal_buf(DatumGetFloat8(value), tmp);
				return tmp;
			}
			break;
	}
	return OutputFunctionCall(&col->out, value);
}

static void
free_text(SinkColumn *col, char *text, char *tmp)
{
	if (text != tmp && col->type != BOOLOID)
		pfree(text);
}

/*
 * A text or varchar value's bytes (not terminated), when they are there as
 * they are: false for a compressed or out-of-line value (its output
 * function decompresses it and frees the copy).
 */
static bool
text_bytes(SinkColumn *col, Datum value, const char **data, int *len)
{
	struct varlena *t = (struct varlena *) DatumGetPointer(value);

	if ((col->type != TEXTOID && col->type != VARCHAROID) ||
		VARATT_IS_COMPRESSED(t) || VARATT_IS_EXTERNAL(t))
		return false;
	*data = VARDATA_ANY(t);
	*len = VARSIZE_ANY_EXHDR(t);
	return true;
}

/* escape_json of len bytes: copied as they are when none needs escaping */
static void
append_json_string(StringInfo buf, const char *data, int len)
{
	char	   *copy;

	for (int i = 0; i < len; i++)
	{
		unsigned char c = data[i];

		if (c < ' ' || c == '"' || c == '\\')
		{
			copy = pnstrdup(data, len);
			escape_json(buf, copy);
			pfree(copy);
			return;
		}
	}
	enlargeStringInfo(buf, len + 2);
	buf->data[buf->len++] = '"';
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len++] = '"';
	buf->data[buf->len] = '\0';
}

/*
 * JsonEncodeDateTime of a timestamp or timestamptz: the text of its whole
 * second (kept in col->second while the values stay in that second and
 * the time zone is the same), with the fraction as AppendSeconds writes
 * it: a point and six digits, trailing zeros dropped, none when zero.
 */
static void
append_json_timestamp(StringInfo buf, SinkColumn *col, int64 value)
{
	SecondText *st = &col->second;
	int64		fraction = value % USECS_PER_SEC;
	char		digits[8];
	int			ndigits = 0;

	if (fraction < 0)
		fraction += USECS_PER_SEC;
	if (!st->valid || st->second != value - fraction || st->zone != session_timezone)
	{
		char	   *t;

		st->valid = false;
		JsonEncodeDateTime(st->text, Int64GetDatum(value - fraction), col->type, NULL);
		st->len = strlen(st->text);
		t = strchr(st->text, 'T');
		if (t == NULL || t - st->text + 9 > st->len)
		{
			/* not "...THH:MM:SS...": as it is */
			JsonEncodeDateTime(st->text, Int64GetDatum(value), col->type, NULL);
			appendStringInfoChar(buf, '"');
			appendStringInfoString(buf, st->text);
			appendStringInfoChar(buf, '"');
			return;
		}
		st->fraction_at = t - st->text + 9;
		st->second = value - fraction;
		st->zone = session_timezone;
		st->valid = true;
	}
	if (fraction != 0)
	{
		digits[ndigits++] = '.';
		for (int64 scale = USECS_PER_SEC / 10; scale > 0 && fraction > 0; scale /= 10)
		{
			digits[ndigits++] = '0' + fraction / scale;
			fraction %= scale;
		}
	}
	enlargeStringInfo(buf, st->len + ndigits + 2);
	buf->data[buf->len++] = '"';
	memcpy(buf->data + buf->len, st->text, st->fraction_at);
	buf->len += st->fraction_at;
	memcpy(buf->data + buf->len, digits, ndigits);
	buf->len += ndigits;
	memcpy(buf->data + buf->len, st->text + st->fraction_at, st->len - st->fraction_at);
	buf->len += st->len - st->fraction_at;
	buf->data[buf->len++] = '"';
	buf->data[buf->len] = '\0';
}

static void
append_json_value(StringInfo buf, SinkColumn *col, Datum value)
{
	char		tmp[NUMBER_TEXT_LEN];
	char	   *text;
	const char *data;
	int			len;

	switch (col->kind)
	{
		case SINK_JSON_BOOL:
			appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
			return;
		case SINK_JSON_DATETIME:
			{
				char		date[MAXDATELEN + 1];

				if (col->type != DATEOID && !TIMESTAMP_NOT_FINITE(DatumGetInt64(value)))
				{
					append_json_timestamp(buf, col, DatumGetInt64(value));
					return;
				}
				JsonEncodeDateTime(date, value, col->type, NULL);
				appendStringInfoChar(buf, '"');
				appendStringInfoString(buf, date);
				appendStringInfoChar(buf, '"');
				return;
			}
		case SINK_JSON_STRING:
			if (text_bytes(col, value, &data, &len))
			{
				append_json_string(buf, data, len);
				return;
			}
			break;
		default:
			break;
	}
	text = column_text(col, value, tmp);
	len = strlen(text);
	/* integers are JSON numbers; floats but NaN and the infinities */
	if (col->kind == SINK_JSON_RAW ||
		(col->kind == SINK_JSON_NUMBER &&
		 (col->type == INT2OID || col->type == INT4OID || col->type == INT8OID ||
		  IsValidJsonNumber(text, len))))
		appendBinaryStringInfo(buf, text, len);
	else
		escape_json(buf, text);
	free_text(col, text, tmp);
}

/* kafka_csv_field: quoted when empty, the null string, or holding d, q, CR, LF */
static void
append_csv_field(StringInfo buf, SinkFormat *f, const char *v)
{
	bool		quote = v[0] == '\0' || strcmp(v, f->null_string) == 0;

	for (const char *p = v; !quote && *p; p++)
		quote = *p == f->delimiter || *p == f->quote || *p == '\n' || *p == '\r';
	if (!quote)
	{
		appendStringInfoString(buf, v);
		return;
	}
	appendStringInfoChar(buf, f->quote);
	for (const char *p = v; *p; p++)
	{
		if (*p == f->quote)
			appendStringInfoChar(buf, f->quote);
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, f->quote);
}

/* kafka_text_field: COPY text's backslash escapes, and the delimiter's */
static void
append_text_field(StringInfo buf, SinkFormat *f, const char *v)
{
	for (const char *p = v; *p; p++)
	{
		switch (*p)
		{
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			default:
				if (*p == f->delimiter)
					appendStringInfoChar(buf, '\\');
				appendStringInfoChar(buf, *p);
		}
	}
}

bool
kafka_sink_format_event(SinkFormat *f, Datum *values, bool *isnull,
						StringInfo key, StringInfo message)
{
	bool		has_key = false;
	char		tmp[NUMBER_TEXT_LEN];
	char	   *text;

	resetStringInfo(key);
	resetStringInfo(message);
	if (f->key >= 0 && !isnull[f->columns[f->key].attnum - 1])
	{
		SinkColumn *col = &f->columns[f->key];
		Datum		value = values[col->attnum - 1];
		const char *data;
		int			len;

		if (text_bytes(col, value, &data, &len))
			appendBinaryStringInfo(key, data, len);
		else
		{
			text = column_text(col, value, tmp);
			appendStringInfoString(key, text);
			free_text(col, text, tmp);
		}
		has_key = true;
	}
	if (f->format == KAFKA_FORMAT_JSON)
		appendStringInfoChar(message, '{');
	for (int i = 0; i < f->ncolumns; i++)
	{
		SinkColumn *col = &f->columns[i];
		Datum		value = values[col->attnum - 1];
		bool		null = isnull[col->attnum - 1];

		if (f->format == KAFKA_FORMAT_JSON)
		{
			if (i > 0)
				appendStringInfoChar(message, ',');
			appendBinaryStringInfo(message, col->json_name, col->json_name_len);
			if (null)
				appendStringInfoString(message, "null");
			else
				append_json_value(message, col, value);
			continue;
		}
		if (i > 0)
			appendStringInfoChar(message, f->delimiter);
		if (null)
		{
			appendStringInfoString(message, f->null_string);
			continue;
		}
		text = column_text(col, value, tmp);
		if (f->format == KAFKA_FORMAT_CSV)
			append_csv_field(message, f, text);
		else
			append_text_field(message, f, text);
		free_text(col, text, tmp);
	}
	if (f->format == KAFKA_FORMAT_JSON)
		appendStringInfoChar(message, '}');
	return has_key;
}
