/*
 * key_size.c
 *	  Refusing, when a batch applies it, an event whose group key the
 *	  view's state table could not index.
 *
 * A group's row is found by a btree index on its keys (window/
 * state_tables.c), which takes entries of at most about a third of a page
 * (2704 bytes with 8 kB pages, after compression).  The delta table has no
 * index, so a longer key would be accepted by the batch, counted by reads,
 * and then refused by the combiner's merge, which sets the delta aside: the
 * group would vanish.  Checked here instead, the event fails for that view
 * when it is applied (recorded in view_errors, SQLSTATE 22001 as a value
 * too long for its column: 54000, PostgreSQL's own code for it, is the time
 * limit's, which the worker does not search a culprit event for), as any
 * error of a view's expressions does.  Rows with short keys cost a sum of lengths; only keys
 * of more than KEY_CHECK_BYTES are formed into an index entry to measure.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/itup.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "utils/rel.h"

#include "worker/key_size.h"

/* Below this many bytes of key data no entry can be too large */
#define KEY_CHECK_BYTES 2000

/* The largest btree entry, as _bt_check_third_page measures it */
#define BTREE_MAX_ENTRY \
	(MAXALIGN_DOWN((BLCKSZ - MAXALIGN(SizeOfPageHeaderData + 3 * sizeof(ItemIdData)) - \
					MAXALIGN(sizeof(BTPageOpaqueData))) / 3) - MAXALIGN(sizeof(ItemPointerData)))

typedef struct KeyIndex
{
	char	   *name;
	TupleDesc	desc;			/* the index's */
	int			natts;
	AttrNumber *delta_attnums;	/* the delta table's columns it indexes */
} KeyIndex;

/*
 * The btree indexes of state table state on its columns (not expressions),
 * with the delta table's column of each (the delta table is the state
 * table's columns after its writer column); in cxt.  NIL when none.
 */
static List *
key_indexes(Oid state, MemoryContext cxt)
{
	Relation	rel = table_open(state, AccessShareLock);
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		bool		plain = index->rd_rel->relam == BTREE_AM_OID;
		MemoryContext old;
		KeyIndex   *k;

		for (int i = 0; plain && i < index->rd_index->indnatts; i++)
			plain = index->rd_index->indkey.values[i] > 0;
		if (!plain)
		{
			index_close(index, AccessShareLock);
			continue;
		}
		old = MemoryContextSwitchTo(cxt);
		k = palloc(sizeof(KeyIndex));
		k->name = pstrdup(RelationGetRelationName(index));
		k->desc = CreateTupleDescCopy(RelationGetDescr(index));
		k->natts = index->rd_index->indnatts;
		k->delta_attnums = palloc(sizeof(AttrNumber) * k->natts);
		for (int i = 0; i < k->natts; i++)
			k->delta_attnums[i] = index->rd_index->indkey.values[i] + 1;
		result = lappend(result, k);
		MemoryContextSwitchTo(old);
		index_close(index, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * Could a row of these values hold a key too long for an index: more than
 * KEY_CHECK_BYTES of variable-length values, or one stored out of line?
 */
static bool
row_may_hold_long_key(TupleDesc desc, Datum *values, bool *isnull)
{
	Size		bytes = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		if (isnull[i] || TupleDescAttr(desc, i)->attlen != -1)
			continue;
		if (VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
			return true;
		bytes += VARSIZE_ANY(DatumGetPointer(values[i]));
	}
	return bytes > KEY_CHECK_BYTES;
}

/*
 * The size of the index entry of keys (compressed as an index stores them),
 * or INDEX_SIZE_MASK + 1 when it is larger than any index entry may be:
 * index_form_tuple then fails with 54000, which, raised in a view's run,
 * would say nothing of the key.  That error is caught only because the
 * caller then raises its own (the run's subtransaction cleans up).
 */
static Size
index_entry_size(TupleDesc desc, Datum *keys, bool *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile Size size;

	PG_TRY();
	{
		IndexTuple	entry = index_form_tuple(desc, keys, nulls);

		size = IndexTupleSize(entry);
		pfree(entry);
	}
	PG_CATCH();
	{
		if (geterrcode() != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			PG_RE_THROW();
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		size = INDEX_SIZE_MASK + 1;
	}
	PG_END_TRY();
	return size;
}

/* Check delta rows of view_name for the indexes of its state table */
void
stream_key_size_init(KeySizeCheck *c, Oid state_table, const char *view_name, MemoryContext cxt)
{
	c->state_table = state_table;
	c->view_name = view_name;
	c->cxt = cxt;
	c->loaded = false;
	c->indexes = NIL;
}

/*
 * Error if the delta row in slot (deformed) has keys some index of the
 * state table could not take.
 */
void
stream_check_key_size(KeySizeCheck *c, TupleTableSlot *slot)
{
	Datum	   *values = slot->tts_values;
	bool	   *isnull = slot->tts_isnull;
	ListCell   *lc;

	if (!row_may_hold_long_key(slot->tts_tupleDescriptor, values, isnull))
		return;
	if (!c->loaded)
	{
		c->indexes = key_indexes(c->state_table, c->cxt);
		c->loaded = true;
	}
	foreach(lc, c->indexes)
	{
		KeyIndex   *k = lfirst(lc);
		Datum		keys[INDEX_MAX_KEYS];
		bool		nulls[INDEX_MAX_KEYS];
		Size		bytes = 0;
		bool		measure = false;
		Size		size;

		for (int i = 0; i < k->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(k->desc, i);

			keys[i] = values[k->delta_attnums[i] - 1];
			nulls[i] = isnull[k->delta_attnums[i] - 1];
			if (nulls[i] || att->attlen != -1)
				continue;
			if (VARATT_IS_EXTERNAL(DatumGetPointer(keys[i])))
				measure = true;
			else
				bytes += VARSIZE_ANY(DatumGetPointer(keys[i]));
		}
		if (!measure && bytes <= KEY_CHECK_BYTES)
			continue;
		size = index_entry_size(k->desc, keys, nulls);
		if (size > BTREE_MAX_ENTRY)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("the group key of continuous view \"%s\" is too large", c->view_name),
					 size == INDEX_SIZE_MASK + 1 ?
					 errdetail("An entry of index \"%s\" would take more than %zu bytes; at most %zu fit.",
							   k->name, (Size) INDEX_SIZE_MASK, (Size) BTREE_MAX_ENTRY) :
					 errdetail("An entry of index \"%s\" would take %zu bytes; at most %zu fit.",
							   k->name, size, (Size) BTREE_MAX_ENTRY),
					 errhint("Group by a shorter value, such as md5() of a long text.")));
	}
}
