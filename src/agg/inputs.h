/*
 * inputs.h
 *	  The multiset of an aggregate's input rows, the partial state of
 *	  aggregates without another way to merge (inputs.c), and its
 *	  finalization by the original aggregate (inputs_final.c).
 */
#ifndef STREAM_EXT_INPUTS_H
#define STREAM_EXT_INPUTS_H

/* One distinct input row: its values in send format, and how often seen */
typedef struct InputEntry
{
	char	   *data;
	int32		len;
	int64		count;
} InputEntry;

typedef struct InputsState
{
	MemoryContext cxt;			/* where entries live */
	int			natts;			/* values per row */
	Oid		   *types;			/* their types */
	InputEntry *entries;
	int64		nentries;
	int64		capacity;
	bool		sorted;			/* by bytes, identical rows merged */
	bytea	   *source;			/* the serialized form entries point into, as
								 * long as the state is unchanged (else NULL) */
} InputsState;

/*
 * The head of a serialized input set (inputs.c), followed by the natts
 * types and the entries; fixed-size, so that a read can fetch it alone.
 */
typedef struct InputsHeader
{
	int32		magic;			/* INPUTS_MAGIC */
	int32		natts;
	int64		nentries;		/* distinct rows */
	int64		nrows;			/* rows: the sum of the entries' counts */
	int64		nnull;			/* entries holding a NULL value */
} InputsHeader;

#define INPUTS_MAGIC 0x53454932	/* "SEI2" */

/*
 * Bytes of an entry of a one-column set holding a value of w bytes (its
 * count, the row's length, then the row: the value's length and bytes),
 * and of the NULL entry (whose value's length is -1, sorted last).
 */
#define STREAM_INPUTS_FIXED_ENTRY(w) (sizeof(int64) + 2 * sizeof(int32) + (w))
#define STREAM_INPUTS_NULL_ENTRY STREAM_INPUTS_FIXED_ENTRY(0)

/*
 * A one-column input set stored out of line uncompressed whose entries all
 * have one size (stream_inputs_sliced_layout): entry i of its non-NULL
 * values lies at start + i * entry_size, and can be fetched as a slice.
 */
typedef struct InputsSlicedLayout
{
	InputsHeader header;
	Oid			type;			/* of its column */
	int64		start;			/* offset of entry 0 */
	int64		nvalues;		/* non-NULL entries; the NULL one is last */
	int32		entry_size;		/* bytes of a non-NULL entry */
} InputsSlicedLayout;

extern InputsState *stream_inputs_from_bytea(bytea *b);
extern InputsState *stream_inputs_union(InputsState *a, InputsState *b, MemoryContext cxt);
extern InputsState *stream_inputs_copy(InputsState *s, MemoryContext cxt);
extern int64 stream_inputs_count_union(InputsState *a, InputsState *b);
extern InputsHeader stream_inputs_stored_header(Datum d);
extern bool stream_inputs_sliced_layout(Datum d, InputsSlicedLayout *layout);
extern void stream_inputs_corrupted(void) pg_attribute_noreturn();
extern int32 stream_inputs_fixed_width(Oid type);
extern int	stream_inputs_pin_encoding(void);
extern void stream_inputs_restore_encoding(int old);
extern void stream_inputs_final_init(void);

#endif
