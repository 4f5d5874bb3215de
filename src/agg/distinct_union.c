/*
 * distinct_union.c
 *	  count(DISTINCT x) over the union of a group's input sets, without
 *	  reading its large stored state whole.
 *
 * A read of a group that unmerged deltas change counts the distinct values
 * of its state row and of the deltas together.  Merging them costs the
 * size of the state, which a busy group makes large (every user it ever
 * saw) while its deltas stay small (what arrived since the combiner's last
 * round).  So the aggregate stream_ext_internal.count_distinct_union(state)
 * keeps one input that is stored out of line and uncompressed as the base,
 * by its TOAST pointer, and merges the others in memory; at the end it
 * counts the base's values from its header and looks each value of the
 * others up in the base: the base's entries are sorted by their bytes and,
 * for a type of fixed width, have one size, so entry i lies at a known
 * offset, and a search (in doubling steps from the previous value's place,
 * then by halves) fetches only the blocks of entries it visits (slices of
 * the TOAST value: one or two chunks each).  The count is the base's values
 * plus the others' values the base does not hold.  The others are merged
 * as they come (two sorted runs), so they take the room of their union.
 *
 * Which input is the base does not change the count; when probing would
 * fetch more than reading the base whole (many values to look up, a small
 * base), or the base is not such a value (compressed, inline, of a type
 * without a fixed-size send format), the base is read and merged like the
 * others.  ddl/create_view.c stores the state columns of count(DISTINCT x)
 * of fixed-width types uncompressed (analyze/input_aggs.c says which).
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/heaptoast.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "agg/inputs.h"

PG_FUNCTION_INFO_V1(stream_ext_count_distinct_union_trans);
PG_FUNCTION_INFO_V1(stream_ext_count_distinct_union_final);

typedef struct DistinctUnion
{
	struct varlena *base;		/* TOAST pointer of the base, or NULL */
	InputsState *rest;			/* the other inputs' entries, or NULL */
} DistinctUnion;

/* Entries fetched per block of a probe */
#define BLOCK_ENTRIES 64
/* Blocks kept while probing */
#define CACHED_BLOCKS 32
/* A probed block costs about this many chunks of a whole read */
#define PROBE_COST_CHUNKS 3

typedef struct ProbedBase
{
	Datum		value;			/* the TOAST pointer */
	InputsSlicedLayout layout;
	int32		data_len;		/* bytes of an entry's row: a length, the value */
	int64		cached_block[CACHED_BLOCKS];
	char	   *cached_data[CACHED_BLOCKS];
	int			next_slot;
} ProbedBase;

/* An input set of other than one column */
static void
not_one_column(int natts)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("input set has %d columns, not 1", natts)));
}

/* Is attr a value stored out of line without compression? */
static bool
stored_uncompressed(struct varlena *attr)
{
	struct varatt_external toast;

	if (!VARATT_IS_EXTERNAL_ONDISK(attr))
		return false;
	VARATT_EXTERNAL_GET_POINTER(toast, attr);
	return !VARATT_EXTERNAL_IS_COMPRESSED(toast);
}

/*
 * count_distinct_union_trans(internal, bytea): note one input set of the
 * group, a one-column set of count(DISTINCT x).
 */
Datum
stream_ext_count_distinct_union_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	DistinctUnion *u;
	struct varlena *attr;
	InputsState *s;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "count_distinct_union_trans called in a non-aggregate context");
	u = PG_ARGISNULL(0) ? NULL : (DistinctUnion *) PG_GETARG_POINTER(0);
	if (u == NULL)
		u = MemoryContextAllocZero(aggcxt, sizeof(DistinctUnion));
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(u);
	attr = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(1));
	if (u->base == NULL && stored_uncompressed(attr))
	{
		/* the pointer alone: its chunks are read when probed */
		u->base = MemoryContextAlloc(aggcxt, VARSIZE_ANY(attr));
		memcpy(u->base, attr, VARSIZE_ANY(attr));
		PG_RETURN_POINTER(u);
	}

	/*
	 * Any other input is merged into the rest at once (two sorted runs, its
	 * rows copied into the aggregate's context): the rest holds the union,
	 * each distinct row once, not every input's rows.
	 */
	s = stream_inputs_from_bytea((bytea *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(1)));
	if (s->natts != 1)
		not_one_column(s->natts);
	u->rest = u->rest == NULL ? stream_inputs_copy(s, aggcxt) :
		stream_inputs_union(u->rest, s, aggcxt);
	PG_RETURN_POINTER(u);
}

/* Is the (one-column) entry e a NULL? */
static bool
entry_is_null(const InputEntry *e)
{
	int32		len;

	if (e->len < (int32) sizeof(int32))
		stream_inputs_corrupted();
	memcpy(&len, e->data, sizeof(len));
	return len == -1;
}

/* The non-NULL distinct values of a sorted one-column set */
static int64
count_values(InputsState *s)
{
	int64		n = 0;

	for (int64 i = 0; i < s->nentries; i++)
		if (!entry_is_null(&s->entries[i]))
			n++;
	return n;
}

/*
 * Set p up to probe the base stored at value: false if its entries are not
 * all of one size at known offsets (stream_inputs_sliced_layout).
 */
static bool
probe_setup(ProbedBase *p, Datum value)
{
	memset(p, 0, sizeof(*p));
	if (!stream_inputs_sliced_layout(value, &p->layout))
		return false;
	p->value = value;
	p->data_len = p->layout.entry_size - sizeof(int64) - sizeof(int32);
	for (int i = 0; i < CACHED_BLOCKS; i++)
		p->cached_block[i] = -1;
	return true;
}

/* The bytes of block b of the base's non-NULL entries, fetched if need be */
static char *
probe_block(ProbedBase *p, int64 b)
{
	int64		first = b * BLOCK_ENTRIES;
	int64		n = Min(BLOCK_ENTRIES, p->layout.nvalues - first);
	int64		len = n * p->layout.entry_size;
	bytea	   *slice;
	int			slot;

	for (int i = 0; i < CACHED_BLOCKS; i++)
		if (p->cached_block[i] == b)
			return p->cached_data[i];
	slice = DatumGetByteaPSlice(p->value, p->layout.start + first * p->layout.entry_size, len);
	if (VARSIZE_ANY_EXHDR(slice) != len)
		stream_inputs_corrupted();
	slot = p->next_slot;
	p->next_slot = (p->next_slot + 1) % CACHED_BLOCKS;
	if (p->cached_data[slot] != NULL)
		pfree(p->cached_data[slot]);
	p->cached_block[slot] = b;
	p->cached_data[slot] = palloc(len);
	memcpy(p->cached_data[slot], VARDATA_ANY(slice), len);
	pfree(slice);
	return p->cached_data[slot];
}

/* The row of the base's entry i (a length, the value), checked */
static const char *
probe_entry(ProbedBase *p, int64 i)
{
	const char *e = probe_block(p, i / BLOCK_ENTRIES) + (i % BLOCK_ENTRIES) * p->layout.entry_size;
	int64		count;
	int32		elen;
	int32		len;

	memcpy(&count, e, sizeof(count));
	memcpy(&elen, e + sizeof(int64), sizeof(elen));
	memcpy(&len, e + sizeof(int64) + sizeof(int32), sizeof(len));
	if (count <= 0 || elen != p->data_len || len != p->data_len - (int32) sizeof(int32))
		stream_inputs_corrupted();
	return e + sizeof(int64) + sizeof(int32);
}

/* Is the base's entry i below the row data? */
static bool
entry_below(ProbedBase *p, int64 i, const char *data)
{
	return memcmp(probe_entry(p, i), data, p->data_len) < 0;
}

/*
 * How many of rest's values (sorted, non-NULL ones first) the base does not
 * hold.  Each value's place is at or after the previous one's: it is
 * bracketed from there in doubling steps, then searched in the bracket, so
 * that a value close to the previous one costs a few entries of the blocks
 * already fetched, and one far away about twice the log of the distance.
 */
static int64
count_new_by_probes(ProbedBase *p, InputsState *rest)
{
	int64		lo = 0;
	int64		fresh = 0;

	for (int64 i = 0; i < rest->nentries; i++)
	{
		const InputEntry *e = &rest->entries[i];
		int64		step = 1;
		int64		hi;

		if (entry_is_null(e))
			continue;
		if (e->len != p->data_len)
			stream_inputs_corrupted();
		/* the first base entry not below e is in [lo, hi] */
		while (lo + step - 1 < p->layout.nvalues && entry_below(p, lo + step - 1, e->data))
		{
			lo += step;
			step *= 2;
		}
		hi = Min(lo + step - 1, p->layout.nvalues);
		while (lo < hi)
		{
			int64		mid = lo + (hi - lo) / 2;

			if (entry_below(p, mid, e->data))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == p->layout.nvalues || memcmp(probe_entry(p, lo), e->data, p->data_len) != 0)
			fresh++;
	}
	return fresh;
}

/*
 * Would probing the base for nrest values fetch fewer chunks (weighted: a
 * slice is an index lookup in the TOAST table, a whole read one ordered
 * scan) than reading it whole?  Values spread over the base are about
 * blocks / nrest blocks apart, and a value's search visits about twice the
 * log of that.
 */
static bool
probing_pays(ProbedBase *p, int64 nrest)
{
	double		blocks = ceil((double) p->layout.nvalues / BLOCK_ENTRIES);
	double		chunks = ceil((double) p->layout.nvalues * p->layout.entry_size / TOAST_MAX_CHUNK_SIZE);
	double		per_value = 2 * Max(log2(blocks / Max(nrest, 1)), 0) + 1;

	return nrest * per_value * PROBE_COST_CHUNKS < chunks;
}

/* count_distinct_union_final(internal): the count */
Datum
stream_ext_count_distinct_union_final(PG_FUNCTION_ARGS)
{
	DistinctUnion *u = PG_ARGISNULL(0) ? NULL : (DistinctUnion *) PG_GETARG_POINTER(0);
	InputsState *base;
	InputsHeader h;
	ProbedBase probe;
	int64		nrest;

	if (u == NULL || (u->base == NULL && u->rest == NULL))
		PG_RETURN_INT64(0);
	if (u->base == NULL)
		PG_RETURN_INT64(count_values(u->rest));
	nrest = u->rest ? count_values(u->rest) : 0;
	if (nrest == 0)
	{
		/* the base's header alone */
		h = stream_inputs_stored_header(PointerGetDatum(u->base));
		if (h.natts != 1)
			not_one_column(h.natts);
		PG_RETURN_INT64(h.nentries - h.nnull);
	}
	if (probe_setup(&probe, PointerGetDatum(u->base)) &&
		probe.layout.type == u->rest->types[0] && probing_pays(&probe, nrest))
	{
		int64		fresh = count_new_by_probes(&probe, u->rest);

		ereport(DEBUG1,
				(errmsg_internal("count_distinct_union: looked " INT64_FORMAT " values up in a stored set of " INT64_FORMAT ", " INT64_FORMAT " new",
								 nrest, probe.layout.nvalues, fresh)));
		PG_RETURN_INT64(probe.layout.nvalues + fresh);
	}

	/* the base whole, counted with the rest in one merge */
	base = stream_inputs_from_bytea((bytea *) PG_DETOAST_DATUM(PointerGetDatum(u->base)));
	if (base->natts != 1)
		not_one_column(base->natts);
	PG_RETURN_INT64(stream_inputs_count_union(base, u->rest));
}
