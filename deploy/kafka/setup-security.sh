#!/bin/sh
# SCRAM users and ACLs of the compose Kafka (docs/security.md), run once by the kafka-setup
# service over the broker's loopback-only ADMIN listener. Idempotent: rerunning sets the same
# passwords and adds ACLs that already exist.
#   emc-worker    the workers: read the input and control topics, write dead letters, own the
#                 batch topic, their changelog/internal topics (emc-streams-*) and groups
#   emc-producer  agencies' systems, `emc publish`, `emc simulate`: WRITE the input topic only
#   emc-operator  people: read the dead-letter topic and the changelogs (emc explain), write
#                 the control topic (emc targets, emc agency maintenance)
set -eu
BOOTSTRAP=127.0.0.1:9094
BIN=/opt/kafka/bin

scram() {
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}
allow() {
  user=$1
  shift
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --add --allow-principal "User:$user" "$@" >/dev/null
}

scram emc-worker "$EMC_WORKER_KAFKA_PASSWORD"
scram emc-producer "$EMC_PRODUCER_KAFKA_PASSWORD"
scram emc-operator "$EMC_OPERATOR_KAFKA_PASSWORD"

for topic in emc.dossier-events.v1 emc.agency-control.v1; do
  allow emc-worker --operation Read --operation Describe --operation Create --operation DescribeConfigs --topic "$topic"
done
allow emc-worker --operation Write --operation Describe --operation Create --operation DescribeConfigs --topic emc.dossier-events.dlq.v1
allow emc-worker --operation All --topic emc.dossier-batches.v1
allow emc-worker --operation All --resource-pattern-type prefixed --topic emc-streams-
allow emc-worker --operation All --resource-pattern-type prefixed --group emc-streams
allow emc-worker --operation IdempotentWrite --cluster

allow emc-producer --operation Write --operation Describe --topic emc.dossier-events.v1

allow emc-operator --operation Read --operation Describe --topic emc.dossier-events.dlq.v1
allow emc-operator --operation Read --operation Write --operation Describe --operation Create --operation DescribeConfigs --topic emc.agency-control.v1
allow emc-operator --operation Read --operation Describe --resource-pattern-type prefixed --topic emc-streams-
echo "kafka-setup: SCRAM users emc-worker, emc-producer, emc-operator and their ACLs are in place"
