"""The station server (``camdock server``, issue 31): every station's events, from a clustered
RabbitMQ, into one PostgreSQL evidence index, and the fleet view over it.

Stations publish over MQTT to any node of the cluster; RabbitMQ's MQTT plugin routes each
message into the topic exchange ``amq.topic`` (``/`` becomes ``.``). The server's quorum queue
is bound there under the stations' prefix, so it holds every message while the server is away
and survives the loss of a node. Several AMQP consumers compete on it; each writes a batch in
one transaction and acknowledges it only after the commit, and every event is one row by its
id, so a redelivery (a lost consumer, a node killed mid-burst, a station resending after a
reconnect) changes nothing.

Modules: ``contract`` (what a message must be: docs/asyncapi.yaml), ``schema`` (versioned
migrations), ``ingest`` (one batch into the index), ``consumer`` (the AMQP side), ``fleet``
(the queries the fleet view shows), ``web`` (the fleet view), ``config``, ``engines`` (local
PostgreSQL and RabbitMQ for the tests, the benchmark and the demo) and ``fleetsim`` (simulated
stations over MQTT, trying each broker host in turn).
"""
