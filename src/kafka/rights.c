/*
 * rights.c
 *	  The rights a Kafka worker acts on, checked at every batch.  A consumer
 *	  acts for the role that configured it (kafka_consumers.created_by), a
 *	  producer for the owner of its staging view (the role that configured
 *	  it, unless the view was given to another).  That role must still be a
 *	  member of stream_ext_kafka (superusers are) and hold INSERT on the
 *	  stream (consumers) or SELECT on it (producers), as when it configured
 *	  the worker: a REVOKE, or dropping the role, stops the worker's batches
 *	  with an error its view shows (last_error) until the rights come back.
 *	  The events wait: in Kafka for a consumer, in the staging view for a
 *	  producer.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "kafka/rights.h"

#define KAFKA_ROLE "stream_ext_kafka"

/* The owner of relation relid (InvalidOid if it is gone) */
Oid
kafka_relation_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* Raise an error unless role may still run w (in a transaction). */
void
kafka_check_rights(KafkaWorker *w, Oid role)
{
	const char *what = w->producer ? "producer" : "consumer";
	Oid			kafka_role = get_role_oid(KAFKA_ROLE, true);
	char	   *name = OidIsValid(role) ? GetUserNameFromId(role, true) : NULL;
	char	   *stream = get_rel_name(w->cfg.stream);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that Kafka %s %d acts for no longer exists", what, w->cfg.id),
				 errhint("Configure it again as a member of role %s.", KAFKA_ROLE)));
	if (!OidIsValid(kafka_role) || !is_member_of_role(role, kafka_role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" that Kafka %s %d acts for is no longer a member of role %s",
						name, what, w->cfg.id, KAFKA_ROLE),
				 errhint("GRANT %s TO the role, or configure the %s again as a member.",
						 KAFKA_ROLE, what)));
	if (pg_class_aclcheck(w->cfg.stream, role, w->producer ? ACL_SELECT : ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" that Kafka %s %d acts for has no %s privilege on stream \"%s\"",
						name, what, w->cfg.id, w->producer ? "SELECT" : "INSERT",
						stream ? stream : "?")));
}
