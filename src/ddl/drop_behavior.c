/*
 * drop_behavior.c
 *	  Whether the DROP being run cascades, for the drops it sets off.
 *
 * Dropping a continuous view drops its internal tables from the sql_drop
 * event trigger (on_sql_drop, in the install script).  Other roles may have
 * made objects that depend on those tables (a view over one, a column of its
 * row type): then, as for any table, the drop fails unless it cascades.  The
 * event trigger cannot see whether the statement that set it off said
 * CASCADE, so this module keeps that while a DROP, a DROP OWNED or an ALTER
 * TABLE ... DROP COLUMN or DROP CONSTRAINT runs, and drop_cascades() tells
 * it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/parsenodes.h"

#include "ddl/drop_behavior.h"

PG_FUNCTION_INFO_V1(stream_ext_drop_cascades);

static bool drop_cascades = false;

/*
 * The behavior of an ALTER TABLE's DROP COLUMN and DROP CONSTRAINT
 * subcommands (CASCADE if any says so); false if it has none
 */
static bool
alter_drop_behavior(AlterTableStmt *stmt, DropBehavior *behavior)
{
	ListCell   *lc;
	bool		drops = false;

	*behavior = DROP_RESTRICT;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype != AT_DropColumn && cmd->subtype != AT_DropConstraint)
			continue;
		drops = true;
		if (cmd->behavior == DROP_CASCADE)
			*behavior = DROP_CASCADE;
	}
	return drops;
}

/*
 * A DROP, a DROP OWNED, or an ALTER TABLE that drops columns or constraints
 * (which may drop views with them) is about to run: keep its behavior (the
 * one before in *saved, for stream_drop_behavior_end).  False for other
 * statements.
 */
bool
stream_drop_behavior_begin(Node *parsetree, bool *saved)
{
	DropBehavior behavior;

	if (IsA(parsetree, DropStmt))
		behavior = ((DropStmt *) parsetree)->behavior;
	else if (IsA(parsetree, DropOwnedStmt))
		behavior = ((DropOwnedStmt *) parsetree)->behavior;
	else if (!IsA(parsetree, AlterTableStmt) ||
			 !alter_drop_behavior((AlterTableStmt *) parsetree, &behavior))
		return false;
	*saved = drop_cascades;
	drop_cascades = behavior == DROP_CASCADE;
	return true;
}

/* The DROP ended (or failed): back to the behavior of the one around it */
void
stream_drop_behavior_end(bool saved)
{
	drop_cascades = saved;
}

/* drop_cascades(): does the DROP being run cascade? */
Datum
stream_ext_drop_cascades(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(drop_cascades);
}
