/*
 * mock_broker.c
 *	  A Kafka cluster for the tests: librdkafka's mock cluster, which speaks
 *	  the Kafka protocol on loopback.
 *
 *   mock_broker NBROKERS [TOPIC:PARTITIONS ...]
 *
 * Prints "bootstrap <host:port,...>" on stdout, then reads commands on stdin,
 * one per line, and answers each with "ok" or "error <why>":
 *   topic NAME PARTITIONS      create a topic
 *   down BROKER | up BROKER    take a broker (1..N) down or up
 *   errors APIKEY ERR COUNT    the next COUNT requests of API APIKEY fail with
 *                              error code ERR (rd_kafka_mock_push_request_errors)
 *   clear APIKEY               forget pushed errors of APIKEY
 *   leader TOPIC PART BROKER   the partition's leader (-1: none, as when its only
 *                              replica's broker is gone)
 *   quit                       (or end of input) stop
 * The mock cluster cannot add partitions to an existing topic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int
create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions)
{
	rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, partitions, 1);

	if (err)
	{
		printf("error %s\n", rd_kafka_err2str(err));
		return 0;
	}
	return 1;
}

int
main(int argc, char **argv)
{
	char		errstr[512];
	char		line[1024];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	int			nbrokers = argc > 1 ? atoi(argv[1]) : 1;

	if (nbrokers < 1)
	{
		fprintf(stderr, "usage: mock_broker NBROKERS [TOPIC:PARTITIONS ...]\n");
		return 2;
	}
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (mc == NULL)
	{
		fprintf(stderr, "could not create the mock cluster\n");
		return 1;
	}
	for (int i = 2; i < argc; i++)
	{
		char	   *colon = strrchr(argv[i], ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		if (!create_topic(mc, argv[i], atoi(colon + 1)))
			return 1;
	}
	printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		char		cmd[64] = "", name[512] = "";
		int			a = 0, b = 0, c = 0;
		int			n = sscanf(line, "%63s %511s %d %d", cmd, name, &b, &c);
		int			ok = 1;

		if (n <= 0)
			continue;
		a = atoi(name);
		if (strcmp(cmd, "quit") == 0)
			break;
		else if (strcmp(cmd, "topic") == 0 && n >= 3)
			ok = create_topic(mc, name, b);
		else if (strcmp(cmd, "down") == 0 && n >= 2)
			rd_kafka_mock_broker_set_down(mc, a);
		else if (strcmp(cmd, "up") == 0 && n >= 2)
			rd_kafka_mock_broker_set_up(mc, a);
		else if (strcmp(cmd, "errors") == 0 && n >= 4)
		{
			for (int i = 0; i < c; i++)
				rd_kafka_mock_push_request_errors(mc, a, 1, (rd_kafka_resp_err_t) b);
		}
		else if (strcmp(cmd, "leader") == 0 && n >= 4)
		{
			/* leader TOPIC PARTITION BROKER (-1: no leader) */
			rd_kafka_resp_err_t err = rd_kafka_mock_partition_set_leader(mc, name, b, c);

			if (err)
			{
				printf("error %s\n", rd_kafka_err2str(err));
				ok = 0;
			}
		}
		else if (strcmp(cmd, "clear") == 0 && n >= 2)
			rd_kafka_mock_clear_request_errors(mc, a);
		else
		{
			printf("error unknown command\n");
			ok = 0;
		}
		if (ok)
			printf("ok\n");
		fflush(stdout);
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
