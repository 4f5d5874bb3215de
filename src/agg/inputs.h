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

extern InputsState *stream_inputs_from_bytea(bytea *b);
extern int	stream_inputs_pin_encoding(void);
extern void stream_inputs_restore_encoding(int old);

#endif
