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
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "utils/datetime.h"
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

typedef struct SinkColumn
{
	AttrNumber	attnum;			/* in the stream */
	Oid			type;			/* base type */
	SinkJsonKind kind;
	char	   *json_name;		/* "name": */
	FmgrInfo	out;
} SinkColumn;

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

/* The column's value as ::text gives it (palloc'd, or a constant) */
static char *
column_text(SinkColumn *col, Datum value)
{
	if (col->type == BOOLOID)
		return DatumGetBool(value) ? "true" : "false";
	return OutputFunctionCall(&col->out, value);
}

static void
free_text(SinkColumn *col, char *text)
{
	if (col->type != BOOLOID)
		pfree(text);
}

static void
append_json_value(StringInfo buf, SinkColumn *col, Datum value)
{
	char	   *text;

	switch (col->kind)
	{
		case SINK_JSON_BOOL:
			appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
			return;
		case SINK_JSON_DATETIME:
			{
				char		date[MAXDATELEN + 1];

				JsonEncodeDateTime(date, value, col->type, NULL);
				appendStringInfoChar(buf, '"');
				appendStringInfoString(buf, date);
				appendStringInfoChar(buf, '"');
				return;
			}
		default:
			break;
	}
	text = OutputFunctionCall(&col->out, value);
	if (col->kind == SINK_JSON_RAW ||
		(col->kind == SINK_JSON_NUMBER && IsValidJsonNumber(text, strlen(text))))
		appendStringInfoString(buf, text);
	else
		escape_json(buf, text);
	pfree(text);
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

	resetStringInfo(key);
	resetStringInfo(message);
	if (f->key >= 0 && !isnull[f->columns[f->key].attnum - 1])
	{
		SinkColumn *col = &f->columns[f->key];
		char	   *text = column_text(col, values[col->attnum - 1]);

		appendStringInfoString(key, text);
		free_text(col, text);
		has_key = true;
	}
	if (f->format == KAFKA_FORMAT_JSON)
		appendStringInfoChar(message, '{');
	for (int i = 0; i < f->ncolumns; i++)
	{
		SinkColumn *col = &f->columns[i];
		Datum		value = values[col->attnum - 1];
		bool		null = isnull[col->attnum - 1];
		char	   *text;

		if (f->format == KAFKA_FORMAT_JSON)
		{
			if (i > 0)
				appendStringInfoChar(message, ',');
			appendStringInfoString(message, col->json_name);
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
		text = column_text(col, value);
		if (f->format == KAFKA_FORMAT_CSV)
			append_csv_field(message, f, text);
		else
			append_text_field(message, f, text);
		free_text(col, text);
	}
	if (f->format == KAFKA_FORMAT_JSON)
		appendStringInfoChar(message, '}');
	return has_key;
}
