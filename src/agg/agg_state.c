/*
 * agg_state.c
 *	  Type stream_ext_internal.agg_state: the stored partial state of an
 *	  aggregate whose transition type is internal.
 *
 * PostgreSQL hands an aggregate's deserialization function only bytes its
 * serialization function made, and such functions trust them (tdigest's
 * reads the sizes it finds; hll's and numeric's loop over them).  Every
 * read of a continuous view hands stored states to finalize_agg with the
 * reader's rights, so a state must be something no role can make up: not a
 * bytea, which any role can write, but a value of this type, which has
 * no cast from anything, and whose text and binary input functions only a
 * superuser may call, in a session of a superuser (pg_restore does; a
 * superuser's SECURITY DEFINER function called by another role does not).
 * Its value is the serialized bytes marked with the aggregate that made
 * them and with the identity of that aggregate's deserialization function
 * (a hash of its C symbol and library); reading it back as the state of
 * another aggregate, or of an aggregate whose deserialization function is
 * not the one that mark names, is an error (an owner can copy a state from
 * one column of a state table to another; an aggregate's OID may name
 * another aggregate after pg_upgrade).  So the bytes that reach a
 * deserialization function were made by that aggregate's own serialization
 * function: a worker's partial aggregation (worker/apply.c marks them), or
 * combine.c.
 *
 * The text form is "<aggregate>:\x<hex bytes>", the aggregate as its
 * regprocedure text, so that a dump restores into another database, where
 * the aggregate has another OID.
 *
 * The extension's own inputs_agg (inputs.c) keeps bytea states: its
 * deserialization checks every byte, and the reads of its states fetch them
 * in slices at fixed offsets.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "agg/agg_state.h"

PG_FUNCTION_INFO_V1(stream_ext_agg_state_in);
PG_FUNCTION_INFO_V1(stream_ext_agg_state_out);
PG_FUNCTION_INFO_V1(stream_ext_agg_state_recv);
PG_FUNCTION_INFO_V1(stream_ext_agg_state_send);

/* inputs.c: the deserialization function that checks its bytes */
extern Datum stream_ext_inputs_deserialize(PG_FUNCTION_ARGS);

typedef struct AggStateData
{
	int32		vl_len_;		/* varlena header */
	AggStateMark mark;			/* the aggregate that made the bytes */
	char		bytes[FLEXIBLE_ARRAY_MEMBER];	/* its serialization */
} AggStateData;

#define AGG_STATE_HEADER	offsetof(AggStateData, bytes)

/* The OID of type stream_ext_internal.agg_state. */
Oid
stream_agg_state_typid(void)
{
	Oid			schema = get_namespace_oid("stream_ext_internal", false);
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum("agg_state"), ObjectIdGetDatum(schema));

	if (!OidIsValid(typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type stream_ext_internal.agg_state does not exist"),
				 errhint("The extension's SQL objects are older than its library: drop and create extension stream_ext again.")));
	return typid;
}

/*
 * The mark of aggregate aggfnoid's states: the aggregate, and the identity
 * of their serialized form, a hash of its deserialization function's
 * symbol and library (two aggregates with one deserialization function,
 * avg and sum of numeric, have the same).
 */
AggStateMark
stream_agg_state_mark(Oid aggfnoid)
{
	AggStateMark mark;
	HeapTuple	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Oid			deserialfn;
	StringInfoData id;
	Datum		d;
	bool		isnull;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	deserialfn = ((Form_pg_aggregate) GETSTRUCT(tuple))->aggdeserialfn;
	ReleaseSysCache(tuple);
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(deserialfn));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", deserialfn);
	initStringInfo(&id);
	d = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc, &isnull);
	if (!isnull)
		appendStringInfoString(&id, TextDatumGetCString(d));
	appendStringInfoChar(&id, '\0');
	d = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin, &isnull);
	if (!isnull)
		appendStringInfoString(&id, TextDatumGetCString(d));
	ReleaseSysCache(tuple);
	mark.aggfnoid = aggfnoid;
	mark.format = hash_bytes((const unsigned char *) id.data, id.len);
	pfree(id.data);
	return mark;
}

/*
 * Can a value of type typid hold an agg_state (itself, or through a domain,
 * an array, a range, a multirange or a composite type)?  Input that nobody
 * vouches for (a Kafka message, kept inputs read back) must not be read as
 * such a type: a Kafka consumer decodes as the bootstrap superuser.
 */
static bool
type_holds(Oid typid, Oid agg_state)
{
	Oid			base = getBaseType(typid);
	Oid			elem = get_element_type(base);
	bool		holds = false;

	if (base == agg_state)
		return true;
	if (OidIsValid(elem))
		return type_holds(elem, agg_state);
	if (type_is_multirange(base))
		return type_holds(get_multirange_range(base), agg_state);
	if (type_is_range(base))
		return type_holds(get_range_subtype(base), agg_state);
	if (OidIsValid(get_typ_typrelid(base)))
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(base, -1);

		for (int i = 0; i < desc->natts && !holds; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				holds = type_holds(TupleDescAttr(desc, i)->atttypid, agg_state);
		ReleaseTupleDesc(desc);
	}
	return holds;
}

bool
stream_type_holds_agg_state(Oid typid)
{
	return type_holds(typid, stream_agg_state_typid());
}

/*
 * Are the internal states of an aggregate with this deserialization function
 * stored as agg_state (true), or as bytea (inputs_agg's: false)?
 */
static bool
agg_state_needed(Oid deserialfn)
{
	FmgrInfo	f;

	fmgr_info(deserialfn, &f);
	return f.fn_addr != stream_ext_inputs_deserialize;
}

/*
 * The type stored partial states have, of an aggregate whose transition type
 * is internal and whose deserialization function is deserialfn.
 */
Oid
stream_internal_state_type(Oid deserialfn)
{
	return agg_state_needed(deserialfn) ? stream_agg_state_typid() : BYTEAOID;
}

/* A new agg_state of mark with room for len bytes */
static AggStateData *
new_state(AggStateMark mark, Size len)
{
	AggStateData *s = palloc(AGG_STATE_HEADER + len);

	SET_VARSIZE(s, AGG_STATE_HEADER + len);
	s->mark = mark;
	return s;
}

/* An agg_state of mark holding serialized (a bytea) */
Datum
stream_agg_state_make(AggStateMark mark, Datum serialized)
{
	bytea	   *b = DatumGetByteaPP(serialized);
	AggStateData *s = new_state(mark, VARSIZE_ANY_EXHDR(b));

	memcpy(s->bytes, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	return PointerGetDatum(s);
}

/* A stored agg_state, its header checked */
static AggStateData *
stored_state(Datum d)
{
	AggStateData *s = (AggStateData *) PG_DETOAST_DATUM(d);

	if (VARSIZE(s) < AGG_STATE_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid partial aggregate state")));
	return s;
}

/* Error unless stored state s has mark. */
static void
check_mark(const AggStateData *s, AggStateMark mark)
{
	if (s->mark.aggfnoid != mark.aggfnoid || s->mark.format != mark.format)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("a partial state of aggregate %s is not one of aggregate %s",
						format_procedure(s->mark.aggfnoid), format_procedure(mark.aggfnoid)),
				 s->mark.aggfnoid == mark.aggfnoid ?
				 errdetail("The aggregate's deserialization function is not the one that made the state.") : 0));
}

/* Error unless state is an agg_state of mark. */
void
stream_agg_state_check(AggStateMark mark, Datum state)
{
	AggStateData *s = stored_state(state);

	check_mark(s, mark);
	if ((Pointer) s != DatumGetPointer(state))
		pfree(s);
}

/*
 * The serialized bytes of an agg_state, as a plain bytea in memory, after
 * checking that it has mark.
 */
Datum
stream_agg_state_bytes(AggStateMark mark, Datum state)
{
	AggStateData *s = stored_state(state);
	Size		len;
	bytea	   *b;

	check_mark(s, mark);
	len = VARSIZE(s) - AGG_STATE_HEADER;
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), s->bytes, len);
	return PointerGetDatum(b);
}

/* Error unless the current user may make up states. */
static void
check_may_enter_states(void)
{
	if (!superuser() || !superuser_arg(GetSessionUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may enter a partial aggregate state"),
				 errdetail("An aggregate's deserialization function trusts the states it is given; the session's user and the current user must be superusers."),
				 errhint("States are made by continuous views; pg_restore enters them as superuser.")));
}

/* The aggregate named, which must store its states as agg_state. */
static Oid
aggregate_named(const char *name)
{
	Oid			aggfnoid = DatumGetObjectId(DirectFunctionCall1(regprocedurein,
															   CStringGetDatum(name)));
	HeapTuple	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Form_pg_aggregate agg;
	bool		fits;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("function %s is not an aggregate", format_procedure(aggfnoid))));
	agg = (Form_pg_aggregate) GETSTRUCT(tuple);
	fits = agg->aggtranstype == INTERNALOID && OidIsValid(agg->aggdeserialfn) &&
		agg_state_needed(agg->aggdeserialfn);
	ReleaseSysCache(tuple);
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("aggregate %s has no partial state of type agg_state",
						format_procedure(aggfnoid))));
	return aggfnoid;
}

/* agg_state_in(cstring): from "<aggregate>:\x<hex>" */
Datum
stream_ext_agg_state_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	char	   *colon = strrchr(str, ':');
	char	   *name;
	Size		hexlen;
	AggStateData *s;

	check_may_enter_states();
	if (colon == NULL || colon == str || strncmp(colon + 1, "\\x", 2) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"", "agg_state", str),
				 errdetail("A partial state is written as the aggregate, a colon and its bytes in hex: avg(numeric):\\x0001.")));
	name = pnstrdup(str, colon - str);
	hexlen = strlen(colon + 3);
	s = new_state(stream_agg_state_mark(aggregate_named(name)), hexlen / 2 + 1);
	SET_VARSIZE(s, AGG_STATE_HEADER + hex_decode(colon + 3, hexlen, s->bytes));
	PG_RETURN_POINTER(s);
}

/* agg_state_out(agg_state) */
Datum
stream_ext_agg_state_out(PG_FUNCTION_ARGS)
{
	AggStateData *s = stored_state(PG_GETARG_DATUM(0));
	Size		len = VARSIZE(s) - AGG_STATE_HEADER;
	char	   *name = format_procedure(s->mark.aggfnoid);
	Size		namelen = strlen(name);
	char	   *out = palloc(namelen + 3 + 2 * len + 1);

	memcpy(out, name, namelen);
	memcpy(out + namelen, ":\\x", 3);
	out[namelen + 3 + hex_encode(s->bytes, len, out + namelen + 3)] = '\0';
	PG_RETURN_CSTRING(out);
}

/* agg_state_recv(internal): the aggregate's name, then the bytes */
Datum
stream_ext_agg_state_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	AggStateMark mark;
	AggStateData *s;

	check_may_enter_states();
	mark = stream_agg_state_mark(aggregate_named(pq_getmsgstring(buf)));
	s = new_state(mark, buf->len - buf->cursor);
	pq_copymsgbytes(buf, s->bytes, buf->len - buf->cursor);
	PG_RETURN_POINTER(s);
}

/* agg_state_send(agg_state) */
Datum
stream_ext_agg_state_send(PG_FUNCTION_ARGS)
{
	AggStateData *s = stored_state(PG_GETARG_DATUM(0));
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendstring(&buf, format_procedure(s->mark.aggfnoid));
	pq_sendbytes(&buf, s->bytes, VARSIZE(s) - AGG_STATE_HEADER);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}
