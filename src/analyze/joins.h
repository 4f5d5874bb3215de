/*
 * joins.h
 *	  Stream-table joins in continuous views: the FROM clauses allowed, the
 *	  privileges on joined tables, the query the workers plan.
 */
#ifndef STREAM_EXT_JOINS_H
#define STREAM_EXT_JOINS_H

#include "nodes/parsenodes.h"

extern Index stream_view_stream_rti(Query *query);
extern void stream_error_not_a_stream(const char *name) pg_attribute_noreturn();
extern bool stream_rtable_joins_tables(List *rtable);
extern bool stream_view_joins_tables(Query *query);
extern void stream_check_join_privileges(Query *query, Index stream_rti);
extern Query *stream_rewrite_view_query(Query *query, Oid stream);

#endif
