/*
 * inputs.c
 *	  The partial state of an aggregate that cannot be merged otherwise: the
 *	  multiset of its input rows.
 *
 * stream_ext_internal.inputs_agg(VARIADIC "any") collects, per group, the
 * rows of values it is called with (an aggregate's arguments and ORDER BY
 * keys, analyze/input_aggs.c), each with its multiplicity.  A row is kept as
 * the concatenation of its values in their types' binary send format (a
 * length, -1 for NULL, then the bytes), so that identical rows have identical
 * bytes whatever the type; rows are sorted by those bytes and identical ones
 * kept once with a count.  Two such states merge by merging two sorted runs
 * (the combine function), so the combiner, windows and reads treat them as
 * any other partial state.  The original aggregate is run over the rows at
 * read time (inputs_final.c).
 *
 * Values are sent and received with the client encoding set to the
 * database's (inputs_pin_encoding): a text's binary form is otherwise in the
 * session's client encoding, and workers and readers may differ.
 *
 * Serialized form (bytea), all integers in native byte order:
 *	 a header (InputsHeader: int32 magic, int32 natts, int64 nentries,
 *	 int64 nrows, int64 nnull), Oid type[natts],
 *	 then per entry: int64 count, int32 len, len bytes.
 * nrows is the sum of the counts (the rows that arrived), nnull the number
 * of entries holding a NULL value: with nentries they answer count(DISTINCT
 * x) and the row numbers of percentiles from the header alone, which a read
 * fetches as a slice of the stored value (inputs_final.c).  The
 * deserialization function checks every length and nentries and nrows: any
 * role can hand a bytea to finalize_agg.
 */
#include "postgres.h"

#include "common/int.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "agg/inputs.h"

PG_FUNCTION_INFO_V1(stream_ext_inputs_trans);
PG_FUNCTION_INFO_V1(stream_ext_inputs_combine);
PG_FUNCTION_INFO_V1(stream_ext_inputs_serialize);
PG_FUNCTION_INFO_V1(stream_ext_inputs_deserialize);


/* The send functions of the transition's argument types (fn_extra) */
typedef struct InputsSend
{
	int			natts;
	FmgrInfo	send[FLEXIBLE_ARRAY_MEMBER];
} InputsSend;

/* Allocate an empty state of natts columns in cxt. */
static InputsState *
inputs_new(MemoryContext cxt, int natts, const Oid *types)
{
	InputsState *s = MemoryContextAllocZero(cxt, sizeof(InputsState));

	s->cxt = cxt;
	s->natts = natts;
	s->types = MemoryContextAlloc(cxt, sizeof(Oid) * Max(natts, 1));
	memcpy(s->types, types, sizeof(Oid) * natts);
	s->capacity = 16;
	s->entries = MemoryContextAlloc(cxt, sizeof(InputEntry) * s->capacity);
	s->sorted = true;
	return s;
}

/* Make room for n entries in s, at once rather than by doubling. */
static void
inputs_reserve(InputsState *s, int64 n)
{
	if (n <= s->capacity)
		return;
	s->capacity = n;
	s->entries = repalloc_huge(s->entries, sizeof(InputEntry) * n);
}

static void
inputs_append(InputsState *s, char *data, int32 len, int64 count)
{
	if (s->nentries == s->capacity)
	{
		s->capacity *= 2;
		s->entries = repalloc_huge(s->entries, sizeof(InputEntry) * s->capacity);
	}
	s->entries[s->nentries].data = data;
	s->entries[s->nentries].len = len;
	s->entries[s->nentries].count = count;
	s->nentries++;
}

/* a + b, rows of an input set; an error past int64 (forged states) */
static int64
add_rows(int64 a, int64 b)
{
	int64		sum;

	if (pg_add_s64_overflow(a, b, &sum))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("aggregate input set has more than %lld rows",
						(long long) PG_INT64_MAX)));
	return sum;
}

static int
entry_cmp(const InputEntry *a, const InputEntry *b)
{
	int			c = memcmp(a->data, b->data, Min(a->len, b->len));

	if (c != 0)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

static int
entry_qsort_cmp(const void *a, const void *b)
{
	return entry_cmp((const InputEntry *) a, (const InputEntry *) b);
}

/* Sort s's entries by their bytes and keep identical ones once, counted. */
static void
inputs_sort(InputsState *s)
{
	int64		out = 0;

	if (s->sorted)
		return;
	qsort(s->entries, s->nentries, sizeof(InputEntry), entry_qsort_cmp);
	for (int64 i = 0; i < s->nentries; i++)
	{
		if (out > 0 && entry_cmp(&s->entries[out - 1], &s->entries[i]) == 0)
			s->entries[out - 1].count = add_rows(s->entries[out - 1].count, s->entries[i].count);
		else
			s->entries[out++] = s->entries[i];
	}
	s->nentries = out;
	s->sorted = true;
}

/*
 * Set the client encoding to the database's for the binary send and receive
 * functions (text's convert to the client encoding); returns the encoding to
 * restore with stream_inputs_restore_encoding, -1 when nothing changed.
 */
int
stream_inputs_pin_encoding(void)
{
	int			old = pg_get_client_encoding();

	if (old == GetDatabaseEncoding())
		return -1;
	if (SetClientEncoding(GetDatabaseEncoding()) < 0)
		elog(ERROR, "could not set the client encoding to the database's");
	return old;
}

void
stream_inputs_restore_encoding(int old)
{
	if (old >= 0 && SetClientEncoding(old) < 0)
		elog(ERROR, "could not restore client encoding %s", pg_encoding_to_char(old));
}

static MemoryContext
aggregate_context(FunctionCallInfo fcinfo, const char *fn)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", fn);
	return cxt;
}

/* Append the row of inputs_trans's arguments to buf, in send format. */
static void
append_row(FunctionCallInfo fcinfo, InputsSend *send, StringInfo buf)
{
	for (int i = 0; i < send->natts; i++)
	{
		int32		len = -1;

		if (PG_ARGISNULL(i + 1))
			appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
		else
		{
			bytea	   *bytes = SendFunctionCall(&send->send[i], PG_GETARG_DATUM(i + 1));

			len = VARSIZE(bytes) - VARHDRSZ;
			appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
			appendBinaryStringInfo(buf, VARDATA(bytes), len);
			pfree(bytes);
		}
	}
}

/* append_row with the client encoding set to the database's */
static void
append_row_pinned(FunctionCallInfo fcinfo, InputsSend *send, StringInfo buf)
{
	int			old = stream_inputs_pin_encoding();

	PG_TRY();
	{
		append_row(fcinfo, send, buf);
	}
	PG_FINALLY();
	{
		stream_inputs_restore_encoding(old);
	}
	PG_END_TRY();
}

/*
 * inputs_trans(state, VARIADIC "any"): add the row of the arguments.
 * Not strict: NULL values are rows too (array_agg keeps them).
 */
Datum
stream_ext_inputs_trans(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "inputs_trans");
	InputsState *s = PG_ARGISNULL(0) ? NULL : (InputsState *) PG_GETARG_POINTER(0);
	InputsSend *send = fcinfo->flinfo->fn_extra;
	int			natts = PG_NARGS() - 1;
	StringInfoData buf;
	char	   *data;

	if (send == NULL)
	{
		send = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
								  offsetof(InputsSend, send) + sizeof(FmgrInfo) * Max(natts, 1));
		send->natts = natts;
		for (int i = 0; i < natts; i++)
		{
			Oid			type = get_fn_expr_argtype(fcinfo->flinfo, i + 1);
			Oid			sendfn;
			bool		varlena;

			getTypeBinaryOutputInfo(type, &sendfn, &varlena);
			fmgr_info_cxt(sendfn, &send->send[i], fcinfo->flinfo->fn_mcxt);
		}
		fcinfo->flinfo->fn_extra = send;
	}
	if (s == NULL)
	{
		Oid			types[FUNC_MAX_ARGS];

		for (int i = 0; i < natts; i++)
			types[i] = get_fn_expr_argtype(fcinfo->flinfo, i + 1);
		s = inputs_new(cxt, natts, types);
	}

	initStringInfo(&buf);
	if (pg_get_client_encoding() == GetDatabaseEncoding())
		append_row(fcinfo, send, &buf);
	else
		append_row_pinned(fcinfo, send, &buf);
	data = MemoryContextAlloc(cxt, Max(buf.len, 1));
	memcpy(data, buf.data, buf.len);
	pfree(buf.data);
	inputs_append(s, data, buf.len, 1);
	s->sorted = (s->nentries == 1);
	s->source = NULL;
	PG_RETURN_POINTER(s);
}

/* A copy of s in cxt, sorted, its rows' bytes copied too. */
static InputsState *
inputs_copy(InputsState *s, MemoryContext cxt)
{
	InputsState *c = inputs_new(cxt, s->natts, s->types);

	if (s->source != NULL)
	{
		/* one copy of the serialized form, the entries pointing into it */
		Size		size = VARSIZE(s->source);
		char	   *copy = MemoryContextAlloc(cxt, size);

		memcpy(copy, s->source, size);
		inputs_reserve(c, s->nentries);
		for (int64 i = 0; i < s->nentries; i++)
			inputs_append(c, copy + (s->entries[i].data - (char *) s->source),
						  s->entries[i].len, s->entries[i].count);
		c->source = (bytea *) copy;
		return c;
	}
	inputs_sort(s);
	for (int64 i = 0; i < s->nentries; i++)
	{
		char	   *data = MemoryContextAlloc(cxt, Max(s->entries[i].len, 1));

		memcpy(data, s->entries[i].data, s->entries[i].len);
		inputs_append(c, data, s->entries[i].len, s->entries[i].count);
	}
	return c;
}

/*
 * Two sets of one view's inputs have as many columns; their types' OIDs
 * differ when one set was written before a pg_dump and pg_restore, which
 * give a user-defined type (a domain, an enum) a new one: the values'
 * binary forms are the same.
 */
static void
check_same_columns(InputsState *a, InputsState *b)
{
	if (a->natts != b->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("cannot merge input sets of %d and %d columns", a->natts, b->natts)));
}

/*
 * Merging the sorted runs of a and b, at entries i and j (not both past
 * their ends): which comes next, a's (< 0), b's (> 0) or both, equal (0)?
 */
static int
next_of_two_runs(const InputsState *a, int64 i, const InputsState *b, int64 j)
{
	if (i >= a->nentries)
		return 1;
	if (j >= b->nentries)
		return -1;
	return entry_cmp(&a->entries[i], &b->entries[j]);
}

/*
 * The union of the multisets a and b (same columns), in cxt, where a lives:
 * a's rows are kept where they are, b's copied (b may live in a
 * shorter-lived context); a is freed.
 */
InputsState *
stream_inputs_union(InputsState *a, InputsState *b, MemoryContext cxt)
{
	InputsState *m;
	int64		i = 0,
				j = 0;

	check_same_columns(a, b);
	inputs_sort(a);
	inputs_sort(b);
	m = inputs_new(cxt, a->natts, a->types);
	inputs_reserve(m, a->nentries + b->nentries);
	while (i < a->nentries || j < b->nentries)
	{
		int			c = next_of_two_runs(a, i, b, j);

		if (c < 0)
		{
			inputs_append(m, a->entries[i].data, a->entries[i].len, a->entries[i].count);
			i++;
		}
		else
		{
			char	   *data = MemoryContextAlloc(cxt, Max(b->entries[j].len, 1));

			memcpy(data, b->entries[j].data, b->entries[j].len);
			if (c == 0)
			{
				inputs_append(m, a->entries[i].data, a->entries[i].len,
							  add_rows(a->entries[i].count, b->entries[j].count));
				pfree(data);
				i++;
			}
			else
				inputs_append(m, data, b->entries[j].len, b->entries[j].count);
			j++;
		}
	}
	pfree(a->entries);
	pfree(a);
	return m;
}

/* A copy of s in cxt, sorted, its rows' bytes copied too. */
InputsState *
stream_inputs_copy(InputsState *s, MemoryContext cxt)
{
	return inputs_copy(s, cxt);
}

/*
 * inputs_combine(a, b): the union of two multisets, in a's aggregate
 * context; b may live in a shorter-lived context (a deserialized state).
 */
Datum
stream_ext_inputs_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "inputs_combine");
	InputsState *a = PG_ARGISNULL(0) ? NULL : (InputsState *) PG_GETARG_POINTER(0);
	InputsState *b = PG_ARGISNULL(1) ? NULL : (InputsState *) PG_GETARG_POINTER(1);

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
		PG_RETURN_POINTER(inputs_copy(b, cxt));
	PG_RETURN_POINTER(stream_inputs_union(a, b, cxt));
}

/*
 * Does entry e (a row of natts values) hold a NULL?  Its bytes were made by
 * append_row or checked by stream_inputs_from_bytea's caller: a length
 * beyond the entry ends the walk.
 */
static bool
entry_has_null(const InputEntry *e, int natts)
{
	int64		pos = 0;

	for (int i = 0; i < natts && pos + (int64) sizeof(int32) <= e->len; i++)
	{
		int32		len;

		memcpy(&len, e->data + pos, sizeof(len));
		if (len == -1)
			return true;
		pos += sizeof(len) + Max(len, 0);
	}
	return false;
}

/* inputs_serialize(state): the bytea form (also the aggregate's result). */
Datum
stream_ext_inputs_serialize(PG_FUNCTION_ARGS)
{
	InputsState *s = (InputsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	InputsHeader header;
	bytea	   *result;

	/* unchanged since it was read: its serialized form is where it came from */
	if (s->source != NULL)
		PG_RETURN_BYTEA_P(s->source);
	inputs_sort(s);
	header.magic = INPUTS_MAGIC;
	header.natts = s->natts;
	header.nentries = s->nentries;
	header.nrows = 0;
	header.nnull = 0;
	for (int64 i = 0; i < s->nentries; i++)
	{
		header.nrows = add_rows(header.nrows, s->entries[i].count);
		if (entry_has_null(&s->entries[i], s->natts))
			header.nnull++;
	}
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &header, sizeof(header));
	appendBinaryStringInfo(&buf, (char *) s->types, sizeof(Oid) * s->natts);
	for (int64 i = 0; i < s->nentries; i++)
	{
		appendBinaryStringInfo(&buf, (char *) &s->entries[i].count, sizeof(int64));
		appendBinaryStringInfo(&buf, (char *) &s->entries[i].len, sizeof(int32));
		appendBinaryStringInfo(&buf, s->entries[i].data, s->entries[i].len);
	}
	result = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	pfree(buf.data);
	PG_RETURN_BYTEA_P(result);
}

/* The error of a serialized input set that is not one (inputs_final.c too) */
void
stream_inputs_corrupted(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid aggregate input set")));
}

/*
 * Bytes of the binary send form of every value of type, when all have the
 * same; else 0.  Entries of a one-column set of such a type all have one
 * size (STREAM_INPUTS_FIXED_ENTRY), which reads of slices rely on.
 */
int32
stream_inputs_fixed_width(Oid type)
{
	switch (type)
	{
		case BOOLOID:
		case CHAROID:
			return 1;
		case INT2OID:
			return 2;
		case INT4OID:
		case OIDOID:
		case DATEOID:
		case FLOAT4OID:
			return 4;
		case INT8OID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case FLOAT8OID:
			return 8;
		case UUIDOID:
			return 16;
		default:
			return 0;
	}
}

/* Copy n bytes at *pos of a data area of size end into dst, advancing. */
static void
take(const char *data, int64 size, int64 *pos, void *dst, int64 n)
{
	if (n < 0 || *pos + n > size)
		stream_inputs_corrupted();
	memcpy(dst, data + *pos, n);
	*pos += n;
}

/*
 * The state of a serialized input set, in CurrentMemoryContext; every
 * length checked, the rows sorted as written (a forged order only costs
 * compaction).  Shared with inputs_final.c.
 */
InputsState *
stream_inputs_from_bytea(bytea *b)
{
	char	   *data = VARDATA_ANY(b);
	int64		size = VARSIZE_ANY_EXHDR(b);
	int64		pos = 0;
	InputsHeader h;
	int64		n;
	int64		rows = 0;
	Oid			types[FUNC_MAX_ARGS];
	InputsState *s;

	take(data, size, &pos, &h, sizeof(h));
	n = h.nentries;
	/* each entry takes its count and length at least */
	if (h.magic != INPUTS_MAGIC || h.natts < 0 || h.natts > FUNC_MAX_ARGS ||
		n < 0 || n > size / (int64) (sizeof(int64) + sizeof(int32)) ||
		h.nnull < 0 || h.nnull > n)
		stream_inputs_corrupted();
	take(data, size, &pos, types, sizeof(Oid) * h.natts);
	s = inputs_new(CurrentMemoryContext, h.natts, types);
	inputs_reserve(s, n);
	for (int64 i = 0; i < n; i++)
	{
		int64		count;
		int32		len;

		take(data, size, &pos, &count, sizeof(count));
		take(data, size, &pos, &len, sizeof(len));
		if (count <= 0 || len < 0 || pos + len > size || count > PG_INT64_MAX - rows)
			stream_inputs_corrupted();
		rows += count;
		inputs_append(s, data + pos, len, count);
		pos += len;
	}
	if (pos != size || rows != h.nrows)
		stream_inputs_corrupted();
	s->sorted = true;
	/* a plain 4-byte-header bytea can be handed back as the serialized form */
	s->source = VARATT_IS_4B_U(b) ? b : NULL;
	return s;
}

/*
 * The distinct non-NULL rows of the union of a and b (same columns; both
 * sorted), counted in one merge of the two runs.
 */
int64
stream_inputs_count_union(InputsState *a, InputsState *b)
{
	int64		i = 0,
				j = 0,
				n = 0;

	check_same_columns(a, b);
	inputs_sort(a);
	inputs_sort(b);
	while (i < a->nentries || j < b->nentries)
	{
		int			c = next_of_two_runs(a, i, b, j);
		const InputEntry *e = c <= 0 ? &a->entries[i] : &b->entries[j];

		if (!entry_has_null(e, a->natts))
			n++;
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
	return n;
}

/* inputs_deserialize(bytea, internal) */
Datum
stream_ext_inputs_deserialize(PG_FUNCTION_ARGS)
{
	/*
	 * Not copied: the combine function that receives the state copies what
	 * it keeps (ours always runs right after the deserialization).
	 */
	bytea	   *b = PG_DETOAST_DATUM(PG_GETARG_DATUM(0));

	PG_RETURN_POINTER(stream_inputs_from_bytea(b));
}
