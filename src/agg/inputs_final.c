/*
 * inputs_final.c
 *	  The result of an aggregate kept as the multiset of its input rows
 *	  (inputs.c): the original aggregate run over those rows.
 *
 *	 inputs_rows(state, distinct) AS t(c1 type, ...)
 *		 the rows of a state, each as often as it was seen (once with
 *		 distinct), its values received with their types' binary input
 *		 functions; the column list must have the state's types.
 *	 finalize_inputs(state, query, aggregate, result-typed NULL)
 *		 runs query, a SELECT of the original aggregate over
 *		 inputs_rows($1, ...) that analyze/input_aggs.c writes, with the state
 *		 as $1, and returns its one value.  The query names the aggregate;
 *		 every analysis of it (the first, and any the plan cache makes
 *		 again) must find exactly aggregate, the regprocedure the view
 *		 holds (and depends on), whatever overloads were created since: it
 *		 is analyzed and run with search_path pg_catalog, pg_temp, and
 *		 post_parse_analyze_hook checks what it calls.
 *
 * Running the aggregate itself, through the executor, is what makes every
 * aggregate exact here: DISTINCT, ORDER BY inside it, ordered-set and
 * hypothetical-set aggregates (which need the executor's Agg node), and
 * aggregates without a combine function.  The query runs read-only with the
 * rights of the role reading the view, as the rest of the view's read does.
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"

#include "agg/inputs.h"
#include "guc.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(stream_ext_inputs_rows);
PG_FUNCTION_INFO_V1(stream_ext_finalize_inputs);
PG_FUNCTION_INFO_V1(stream_ext_inputs_count_distinct);
PG_FUNCTION_INFO_V1(stream_ext_inputs_percentile_float8);

/*
 * Put the rows of s into store (each as often as it was seen, or once with
 * distinct), received with recv; the client encoding must be the database's.
 */
static void
put_rows(Tuplestorestate *store, TupleDesc desc, InputsState *s, FmgrInfo *recv,
		 Oid *ioparams, bool distinct)
{
	Datum	   *values = palloc(sizeof(Datum) * Max(s->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(s->natts, 1));
	StringInfoData value;
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "input set row",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old_cxt = CurrentMemoryContext;

	initStringInfo(&value);
	for (int64 e = 0; e < s->nentries; e++)
	{
		InputEntry *entry = &s->entries[e];
		int32		pos = 0;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(row_cxt);
		MemoryContextSwitchTo(row_cxt);
		for (int i = 0; i < s->natts; i++)
		{
			int32		len;

			if (pos + (int32) sizeof(len) > entry->len)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("invalid aggregate input set")));
			memcpy(&len, entry->data + pos, sizeof(len));
			pos += sizeof(len);
			if (len == -1)
			{
				values[i] = ReceiveFunctionCall(&recv[i], NULL, ioparams[i],
												TupleDescAttr(desc, i)->atttypmod);
				nulls[i] = true;
				continue;
			}
			if (len < 0 || pos + len > entry->len)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("invalid aggregate input set")));
			/* a copy ending in a NUL, as the binary input functions expect */
			resetStringInfo(&value);
			appendBinaryStringInfo(&value, entry->data + pos, len);
			pos += len;
			values[i] = ReceiveFunctionCall(&recv[i], &value, ioparams[i],
											TupleDescAttr(desc, i)->atttypmod);
			nulls[i] = false;
			if (value.cursor != value.len)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("incorrect binary data format in aggregate input set column %d",
								i + 1)));
		}
		if (pos != entry->len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid aggregate input set")));
		MemoryContextSwitchTo(old_cxt);
		for (int64 n = distinct ? 1 : entry->count; n > 0; n--)
		{
			/* a forged count can be 2^62: the rows must stay cancellable */
			CHECK_FOR_INTERRUPTS();
			tuplestore_putvalues(store, desc, values, nulls);
		}
	}
	MemoryContextDelete(row_cxt);
}

/* put_rows with the client encoding set to the database's */
static void
put_rows_pinned(Tuplestorestate *store, TupleDesc desc, InputsState *s, FmgrInfo *recv,
				Oid *ioparams, bool distinct)
{
	int			old = stream_inputs_pin_encoding();

	PG_TRY();
	{
		put_rows(store, desc, s, recv, ioparams, distinct);
	}
	PG_FINALLY();
	{
		stream_inputs_restore_encoding(old);
	}
	PG_END_TRY();
}

/* inputs_rows(state bytea, distinct boolean) RETURNS SETOF record */
Datum
stream_ext_inputs_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InputsState *s = stream_inputs_from_bytea(PG_GETARG_BYTEA_PP(0));
	bool		distinct = PG_GETARG_BOOL(1);
	TupleDesc	desc;
	FmgrInfo   *recv;
	Oid		   *ioparams;

	InitMaterializedSRF(fcinfo, 0);
	desc = rsinfo->setDesc;
	if (desc->natts != s->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("input set has %d columns, but the column list has %d",
						s->natts, desc->natts)));
	recv = palloc(sizeof(FmgrInfo) * Max(s->natts, 1));
	ioparams = palloc(sizeof(Oid) * Max(s->natts, 1));
	for (int i = 0; i < s->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			recvfn;

		/*
		 * The column list says the type: the set's header may name it by
		 * the OID it had before a pg_dump and pg_restore.  A receive
		 * function checks what it is given, as for a client's binary COPY.
		 */
		getTypeBinaryInputInfo(att->atttypid, &recvfn, &ioparams[i]);
		fmgr_info(recvfn, &recv[i]);
	}

	put_rows_pinned(rsinfo->setResult, desc, s, recv, ioparams, distinct);
	return (Datum) 0;
}

/* The prepared query of finalize_inputs, per call site (fn_extra) */
typedef struct FinalizePlan
{
	char	   *query;
	SPIPlanPtr	plan;			/* kept (SPI_keepplan): freed with the call site */
	MemoryContextCallback freed;
} FinalizePlan;

/*
 * The call site's memory goes (its query ended): so does the plan it kept,
 * which SPI_keepplan put under CacheMemoryContext (a session reading such a
 * view left one behind per read).
 */
static void
free_finalize_plan(void *arg)
{
	FinalizePlan *fp = arg;

	if (fp->plan != NULL)
		SPI_freeplan(fp->plan);
	fp->plan = NULL;
}

/* While finalize_inputs prepares or runs query: the aggregate it must call */
static const char *checked_query = NULL;
static Oid	checked_aggregate = InvalidOid;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;

static bool
calls_other_aggregate(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref) && ((Aggref *) node)->aggfnoid != checked_aggregate)
	{
		*(Oid *) context = ((Aggref *) node)->aggfnoid;
		return true;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, calls_other_aggregate, context, 0);
	return expression_tree_walker(node, calls_other_aggregate, context);
}

/* Each analysis of the query being run: it must call the view's aggregate */
static void
check_finalization_analysis(ParseState *pstate, Query *query, JumbleState *jstate)
{
	Oid			other = InvalidOid;

	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);
	if (checked_query == NULL || pstate->p_sourcetext == NULL ||
		strcmp(pstate->p_sourcetext, checked_query) != 0)
		return;
	if (!query->hasAggs)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_FUNCTION),
				 errmsg("the finalization query of aggregate %s calls no aggregate",
						format_procedure(checked_aggregate)),
				 errdetail("A continuous view's finalization query calls its aggregate, unless a function of that name created since matches its arguments better."),
				 errhint("Drop the other function, or define the view again.")));
	if (query_tree_walker(query, calls_other_aggregate, &other, 0))
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_FUNCTION),
				 errmsg("the finalization of aggregate %s resolves to %s",
						format_procedure(checked_aggregate), format_procedure(other)),
				 errdetail("An aggregate of that name created since the view was defined matches its arguments better."),
				 errhint("Drop the other aggregate, or define the view again.")));
}

void
stream_inputs_final_init(void)
{
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = check_finalization_analysis;
}

/*
 * finalize_inputs(state bytea, query text, aggregate regprocedure, result
 * anyelement): query's one value with $1 = state.  Not strict: the aggregate
 * over no rows (a group whose events were all filtered out) is the query
 * over an empty set.
 */
Datum
stream_ext_finalize_inputs(PG_FUNCTION_ARGS)
{
	char	   *query;
	FinalizePlan *volatile fp = fcinfo->flinfo->fn_extra;
	Oid			result_type = get_fn_expr_argtype(fcinfo->flinfo, 3);
	int			guc_level;
	const char *saved_query;
	Oid			saved_aggregate;
	Datum		arg = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	char		argnull = PG_ARGISNULL(0) ? 'n' : ' ';
	Datum		result;
	bool		isnull;
	int16		typlen;
	bool		typbyval;
	int			rc;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (fp == NULL)
	{
		fp = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FinalizePlan));
		fp->freed.func = free_finalize_plan;
		fp->freed.arg = fp;
		MemoryContextRegisterResetCallback(fcinfo->flinfo->fn_mcxt, &fp->freed);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	guc_level = stream_pin_internal_search_path();
	saved_query = checked_query;
	saved_aggregate = checked_aggregate;
	checked_query = query;
	checked_aggregate = PG_GETARG_OID(2);
	PG_TRY();
	{
		if (fp->plan == NULL || strcmp(fp->query, query) != 0)
		{
			SPIPlanPtr	plan = SPI_prepare(query, 1, (Oid[]) {BYTEAOID});

			if (plan == NULL)
				elog(ERROR, "could not prepare the finalization of an aggregate: %s",
					 SPI_result_code_string(SPI_result));
			if (fp->plan != NULL)
			{
				SPI_freeplan(fp->plan);
				pfree(fp->query);
			}
			SPI_keepplan(plan);
			fp->plan = plan;
			fp->query = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, query);
		}
		rc = SPI_execute_plan(fp->plan, &arg, &argnull, true, 2);
	}
	PG_FINALLY();
	{
		checked_query = saved_query;
		checked_aggregate = saved_aggregate;
	}
	PG_END_TRY();
	AtEOXact_GUC(true, guc_level);
	if (rc != SPI_OK_SELECT || SPI_processed != 1 || SPI_tuptable->tupdesc->natts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the finalization query of an aggregate must return one value")));
	if (TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid != result_type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the finalization query of an aggregate returns type %s, not %s",
						format_type_be(TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid),
						format_type_be(result_type))));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	get_typlenbyval(result_type, &typlen, &typbyval);
	if (!isnull)
		result = SPI_datumTransfer(result, typbyval, typlen);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * The header of the input set d, fetched alone when d is stored out of
 * line (a slice of the value: one TOAST chunk, or the compressed prefix
 * that holds it), so that its cost does not grow with the set.
 */
InputsHeader
stream_inputs_stored_header(Datum d)
{
	bytea	   *b = DatumGetByteaPSlice(d, 0, sizeof(InputsHeader));
	InputsHeader h;

	if (VARSIZE_ANY_EXHDR(b) < sizeof(InputsHeader))
		stream_inputs_corrupted();
	memcpy(&h, VARDATA_ANY(b), sizeof(h));
	if (h.magic != INPUTS_MAGIC || h.natts < 0 || h.natts > FUNC_MAX_ARGS ||
		h.nentries < 0 || h.nnull < 0 || h.nnull > h.nentries || h.nrows < h.nentries)
		stream_inputs_corrupted();
	return h;
}

/*
 * Is d a one-column input set stored out of line and uncompressed (its
 * column's storage EXTERNAL: ddl/create_view.c) of a type whose values all
 * have one binary size, its entries of one size with at most the NULL
 * entry after them?  Then fill *layout from its header and column type,
 * fetched as one slice (one TOAST chunk), and each entry can be fetched
 * alone.  False for any other value, which the caller reads whole (which
 * checks it).
 */
bool
stream_inputs_sliced_layout(Datum d, InputsSlicedLayout *layout)
{
	struct varlena *attr = (struct varlena *) DatumGetPointer(d);
	struct varatt_external toast;
	int64		start = sizeof(InputsHeader) + sizeof(Oid);
	int64		size;
	bytea	   *head;
	InputsHeader h;
	int32		width;

	if (!VARATT_IS_EXTERNAL_ONDISK(attr))
		return false;
	VARATT_EXTERNAL_GET_POINTER(toast, attr);
	if (VARATT_EXTERNAL_IS_COMPRESSED(toast))
		return false;
	size = VARATT_EXTERNAL_GET_EXTSIZE(toast);
	head = DatumGetByteaPSlice(d, 0, start);
	if (VARSIZE_ANY_EXHDR(head) != start)
		return false;
	memcpy(&h, VARDATA_ANY(head), sizeof(h));
	memcpy(&layout->type, VARDATA_ANY(head) + sizeof(h), sizeof(Oid));
	pfree(head);
	width = stream_inputs_fixed_width(layout->type);
	if (h.magic != INPUTS_MAGIC || h.natts != 1 || width == 0 || h.nnull < 0 ||
		h.nnull > 1 || h.nentries < h.nnull)
		return false;
	layout->header = h;
	layout->start = start;
	layout->nvalues = h.nentries - h.nnull;
	layout->entry_size = STREAM_INPUTS_FIXED_ENTRY(width);
	/* every entry of that size, then the NULL entry if any */
	return layout->nvalues <= (size - start) / layout->entry_size &&
		size == start + layout->nvalues * layout->entry_size +
		h.nnull * (int64) STREAM_INPUTS_NULL_ENTRY;
}

/*
 * inputs_count_distinct(state): count(DISTINCT x) from the state of one
 * column whose type's equality is the identity of its binary form
 * (analyze/input_aggs.c picks such columns): its entries but a NULL one,
 * read from the state's header alone.  No state is the count over no rows,
 * 0.
 */
Datum
stream_ext_inputs_count_distinct(PG_FUNCTION_ARGS)
{
	InputsHeader h;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(0);
	h = stream_inputs_stored_header(PG_GETARG_DATUM(0));
	if (h.natts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("input set has %d columns, not 1", h.natts)));
	PG_RETURN_INT64(h.nentries - h.nnull);
}

/* A float8 value of a state and how often it arrived */
typedef struct WeightedValue
{
	double		value;
	int64		count;
} WeightedValue;

/* float8's btree order (float8_cmp_internal): NaN after every number */
static int
float8_order(double a, double b)
{
	if (isnan(a))
		return isnan(b) ? 0 : 1;
	if (isnan(b))
		return -1;
	return (a > b) - (a < b);
}

static int
weighted_cmp(const void *a, const void *b)
{
	return float8_order(((const WeightedValue *) a)->value, ((const WeightedValue *) b)->value);
}

/* The value of row k (from 0) of the sorted multiset w of n values */
static double
weighted_row(WeightedValue *w, int64 n, int64 k)
{
	int64		seen = 0;

	for (int64 i = 0; i < n; i++)
	{
		seen += w[i].count;
		if (k < seen)
			return w[i].value;
	}
	elog(ERROR, "missing row in percentile");
	return 0;					/* keep the compiler quiet */
}

/*
 * The next entry of a serialized one-column float8 input set at *pos
 * (advanced), checked: false at the end, *isnull for the NULL entry.
 */
static bool
next_float8_entry(const char *data, int64 size, int64 *pos, WeightedValue *v, bool *isnull)
{
	int32		elen;
	int32		len;
	uint64		bits;
	union
	{
		uint64		i;
		double		d;
	}			swap;

	if (*pos >= size)
		return false;
	if (*pos + (int64) (sizeof(int64) + sizeof(int32)) > size)
		stream_inputs_corrupted();
	memcpy(&v->count, data + *pos, sizeof(int64));
	memcpy(&elen, data + *pos + sizeof(int64), sizeof(int32));
	*pos += sizeof(int64) + sizeof(int32);
	/* the entry: the value's length (-1: NULL), then float8send's bytes */
	if (v->count <= 0 || elen < (int32) sizeof(int32) || *pos + elen > size)
		stream_inputs_corrupted();
	memcpy(&len, data + *pos, sizeof(int32));
	*pos += sizeof(int32);
	if (len == -1 && elen == (int32) sizeof(int32))
	{
		*isnull = true;
		return true;
	}
	if (len != sizeof(bits) || elen != (int32) (sizeof(int32) + sizeof(bits)))
		stream_inputs_corrupted();
	/* float8send's form: the IEEE bits in network byte order */
	memcpy(&bits, data + *pos, sizeof(bits));
	*pos += sizeof(bits);
	swap.i = pg_ntoh64(bits);
	v->value = swap.d;
	*isnull = false;
	return true;
}

/* The row numbers (from 0) percentile_cont or percentile_disc reads of rows */
static void
percentile_rows(double fraction, bool continuous, int64 rows, int64 *first_row,
				int64 *second_row)
{
	if (continuous)
	{
		*first_row = floor(fraction * (rows - 1));
		*second_row = ceil(fraction * (rows - 1));
	}
	else
	{
		int64		rownum = (int64) ceil(fraction * rows);

		*first_row = *second_row = rownum > 1 ? rownum - 1 : 0;
	}
}

/* Bytes of an entry of a one-column float8 input set: non-NULL and NULL */
#define FLOAT8_ENTRY STREAM_INPUTS_FIXED_ENTRY(sizeof(double))
#define NULL_ENTRY STREAM_INPUTS_NULL_ENTRY
/* entries fetched per slice of a percentile walk */
#define SLICE_ENTRIES 128

/*
 * Entries [i, i + n) of the float8 input set d stored out of line, whose
 * entries start at offset start, and extra bytes after them, fetched as one
 * slice into buf.
 */
static void
fetch_float8_entries(Datum d, int64 start, int64 i, int64 n, int64 extra, char *buf)
{
	int64		len = n * FLOAT8_ENTRY + extra;
	bytea	   *slice = DatumGetByteaPSlice(d, start + i * FLOAT8_ENTRY, len);

	if (VARSIZE_ANY_EXHDR(slice) != len)
		stream_inputs_corrupted();
	memcpy(buf, VARDATA_ANY(slice), len);
	pfree(slice);
}

/* The float8 entry at buf, checked: its value and count */
static WeightedValue
float8_entry_at(const char *buf)
{
	WeightedValue v;
	int64		pos = 0;
	bool		entry_null;

	if (!next_float8_entry(buf, FLOAT8_ENTRY, &pos, &v, &entry_null) || entry_null)
		stream_inputs_corrupted();
	return v;
}

/*
 * The percentile of a one-column float8 input set stored out of line and
 * uncompressed (its column's storage is EXTERNAL: ddl/create_view.c), read
 * in slices: the header; the last entries with the NULL entry; then, from
 * the end nearer to the rows the fraction picks, the entries as far as
 * those rows.  Its entries have a fixed size (the NULL entry last), so entry
 * i lies at a known offset; a p99 of a large state reads two slices of a
 * few TOAST chunks.  False when d is not such a value, or has a value with
 * the sign bit (its entries are then not in value order): the caller reads
 * it whole.
 */
static bool
percentile_from_slices(Datum d, double fraction, bool continuous, double *result,
					   bool *isnull)
{
	InputsSlicedLayout layout;
	InputsHeader h;
	int64		start;
	int64		m;
	int64		tail;
	int64		rows;
	int64		null_rows = 0;
	int64		first_row;
	int64		second_row;
	char	   *buf;
	WeightedValue v;
	bool		found_first = false;
	bool		found_second = false;
	double		lo = 0;
	double		hi = 0;

	if (!stream_inputs_sliced_layout(d, &layout) || layout.type != FLOAT8OID ||
		layout.nvalues == 0)
		return false;			/* read whole, which checks it */
	h = layout.header;
	start = layout.start;
	m = layout.nvalues;

	/* the last entries and the NULL entry */
	tail = Min(SLICE_ENTRIES, m);
	buf = palloc(SLICE_ENTRIES * FLOAT8_ENTRY + NULL_ENTRY);
	fetch_float8_entries(d, start, m - tail, tail, h.nnull * NULL_ENTRY, buf);
	if (h.nnull == 1)
	{
		int64		pos = tail * FLOAT8_ENTRY;
		bool		entry_null;

		if (!next_float8_entry(buf, pos + NULL_ENTRY, &pos, &v, &entry_null) || !entry_null)
			stream_inputs_corrupted();
		null_rows = v.count;
	}

	/*
	 * a sign bit set in the last value (a negative number, -0 or a NaN with
	 * the bit): the entries are in value order only when no value has it
	 */
	if (signbit(float8_entry_at(buf + (tail - 1) * FLOAT8_ENTRY).value))
		return false;
	rows = h.nrows - null_rows;
	if (rows < m)
		stream_inputs_corrupted();
	percentile_rows(fraction, continuous, rows, &first_row, &second_row);

	if (second_row >= rows / 2)
	{
		/* from the last entry back: the rows after entry i are above it */
		int64		above = 0;
		int64		end = m;
		int64		n = tail;

		while (!found_first)
		{
			for (int64 e = n - 1; e >= 0 && !found_first; e--)
			{
				int64		low;

				v = float8_entry_at(buf + e * FLOAT8_ENTRY);
				if (v.count > rows - above)
					stream_inputs_corrupted();
				above += v.count;
				low = rows - above;
				if (!found_second && second_row >= low)
				{
					hi = v.value;
					found_second = true;
				}
				if (found_second && first_row >= low)
				{
					lo = v.value;
					found_first = true;
				}
			}
			end -= n;
			if (found_first || end == 0)
				break;
			CHECK_FOR_INTERRUPTS();
			n = Min(SLICE_ENTRIES, end);
			fetch_float8_entries(d, start, end - n, n, 0, buf);
		}
	}
	else
	{
		int64		seen = 0;

		for (int64 begin = 0; begin < m && !found_second; begin += SLICE_ENTRIES)
		{
			int64		n = Min(SLICE_ENTRIES, m - begin);

			CHECK_FOR_INTERRUPTS();
			fetch_float8_entries(d, start, begin, n, 0, buf);
			for (int64 e = 0; e < n && !found_second; e++)
			{
				v = float8_entry_at(buf + e * FLOAT8_ENTRY);
				if (v.count > rows - seen)
					stream_inputs_corrupted();
				if (!found_first && first_row < seen + v.count)
				{
					lo = v.value;
					found_first = true;
				}
				if (found_first && second_row < seen + v.count)
				{
					hi = v.value;
					found_second = true;
				}
				seen += v.count;
			}
		}
	}
	if (!found_first || !found_second)
		stream_inputs_corrupted();			/* the header's row count lies */
	*isnull = false;
	if (!continuous || first_row == second_row)
		*result = lo;
	else
		*result = lo + (((fraction * (rows - 1)) - first_row) * (hi - lo));
	return true;
}

/*
 * inputs_percentile_float8(state, fraction, continuous): percentile_cont
 * (continuous) or percentile_disc of fraction WITHIN GROUP (ORDER BY x) over
 * the state of one float8 column x, computed from its (value, count)
 * entries as PostgreSQL's orderedsetaggs.c computes them from the sorted
 * rows: NULLs ignored, NULL without rows, the same row numbers and the same
 * interpolation.  The entries are read where they lie in the state (byte
 * order is value order when no value is negative); only a state with a
 * negative value has them copied and sorted.
 */
Datum
stream_ext_inputs_percentile_float8(PG_FUNCTION_ARGS)
{
	bool		continuous = PG_GETARG_BOOL(2);
	double		fraction;
	bytea	   *b;
	const char *data;
	int64		size;
	int64		start;
	int64		pos;
	InputsHeader h;
	Oid			type;
	WeightedValue v;
	WeightedValue prev = {0, 0};
	bool		isnull;
	int64		n = 0;
	int64		rows = 0;
	bool		sorted = true;
	int64		first_row;
	int64		second_row;
	double		lo = 0;
	double		hi = 0;
	int64		seen = 0;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	fraction = PG_GETARG_FLOAT8(1);
	if (fraction < 0 || fraction > 1 || isnan(fraction))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("percentile value %g is not between 0 and 1", fraction)));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (percentile_from_slices(PG_GETARG_DATUM(0), fraction, continuous, &lo, &isnull))
	{
		if (isnull)
			PG_RETURN_NULL();
		PG_RETURN_FLOAT8(lo);
	}
	b = PG_GETARG_BYTEA_PP(0);
	data = VARDATA_ANY(b);
	size = VARSIZE_ANY_EXHDR(b);
	if (size < (int64) (sizeof(h) + sizeof(Oid)))
		stream_inputs_corrupted();
	memcpy(&h, data, sizeof(h));
	memcpy(&type, data + sizeof(h), sizeof(Oid));
	if (h.magic != INPUTS_MAGIC)
		stream_inputs_corrupted();
	if (h.natts != 1 || type != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("input set is not of one double precision column")));
	start = sizeof(h) + sizeof(Oid);

	/* the rows that count, and whether the entries are in value order */
	pos = start;
	while (next_float8_entry(data, size, &pos, &v, &isnull))
	{
		if (isnull)
			continue;
		if (v.count > PG_INT64_MAX - rows)
			stream_inputs_corrupted();
		rows += v.count;
		if (n > 0 && float8_order(prev.value, v.value) > 0)
			sorted = false;
		prev = v;
		n++;
	}
	if (rows == 0)
		PG_RETURN_NULL();
	percentile_rows(fraction, continuous, rows, &first_row, &second_row);

	if (sorted)
	{
		/* rows first_row and second_row (from 0), reading as far as them */
		pos = start;
		while (next_float8_entry(data, size, &pos, &v, &isnull))
		{
			if (isnull)
				continue;
			if (first_row >= seen && first_row < seen + v.count)
				lo = v.value;
			if (second_row >= seen && second_row < seen + v.count)
			{
				hi = v.value;
				break;
			}
			seen += v.count;
		}
	}
	else
	{
		WeightedValue *w = palloc(sizeof(WeightedValue) * n);
		int64		i = 0;

		pos = start;
		while (next_float8_entry(data, size, &pos, &v, &isnull))
			if (!isnull)
				w[i++] = v;
		qsort(w, n, sizeof(WeightedValue), weighted_cmp);
		lo = weighted_row(w, n, first_row);
		hi = weighted_row(w, n, second_row);
	}
	if (!continuous || first_row == second_row)
		PG_RETURN_FLOAT8(lo);
	PG_RETURN_FLOAT8(lo + (((fraction * (rows - 1)) - first_row) * (hi - lo)));
}
