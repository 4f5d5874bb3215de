/*
 * event_text.c
 *	  A stream event as text, for the tables that keep events a view could
 *	  not use (view_errors, late_events).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "stream/event_text.h"

/*
 * The event as a row literal, for the errors table: each column through its
 * output function, quoted as record_out quotes, NULL as nothing.
 */
char *
stream_event_as_text(Oid stream, HeapTuple event)
{
	Relation	rel = table_open(stream, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	StringInfoData buf;
	bool		first = true;

	heap_deform_tuple(event, desc, values, nulls);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			typoutput;
		bool		varlena;
		char	   *value;
		bool		quote;

		if (att->attisdropped)
			continue;
		if (!first)
			appendStringInfoChar(&buf, ',');
		first = false;
		if (nulls[i])
			continue;
		getTypeOutputInfo(att->atttypid, &typoutput, &varlena);
		value = OidOutputFunctionCall(typoutput, values[i]);
		quote = (value[0] == '\0' || strpbrk(value, "\"\\(),") != NULL ||
				 strpbrk(value, " \t\n\r\v\f") != NULL);
		if (quote)
			appendStringInfoChar(&buf, '"');
		for (char *c = value; *c; c++)
		{
			if (*c == '"' || *c == '\\')
				appendStringInfoChar(&buf, *c);
			appendStringInfoChar(&buf, *c);
		}
		if (quote)
			appendStringInfoChar(&buf, '"');
	}
	appendStringInfoChar(&buf, ')');
	table_close(rel, AccessShareLock);
	return buf.data;
}
