package io.fitstream.kstreams;

import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;

/**
 * fitstream's planner (cart abandonment and Released demand) as a Kafka Streams application,
 * written the way the Kafka Streams documentation teaches it. See README.md for what it
 * implements, where its semantics differ from fitstream's, and how to run it.
 */
public final class PlannerPeer {
    static {
        // Before any logger exists (the static fields below create Avro's): warnings and up.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
    }

    static final Duration CART_WINDOW = Duration.ofMinutes(30);
    static final Duration BUILD_WINDOW = Duration.ofMinutes(15);
    static final Duration GRACE = Duration.ofMinutes(5);
    static final int RELEASED_PRIORITY = 600;

    /** A purchase line as the peer's internal topics carry it (plain Avro, no framing). */
    static final Schema LINE = new Schema.Parser().parse("""
            {"type": "record", "name": "PeerLine", "namespace": "io.fitstream.kstreams", "fields": [
              {"name": "order_id", "type": "string"},
              {"name": "product_id", "type": "string"},
              {"name": "sku", "type": "string"},
              {"name": "category", "type": ["null", "string"], "default": null},
              {"name": "options", "type": {"type": "map", "values": "string"}, "default": {}},
              {"name": "quantity", "type": "int"}
            ]}""");

    /** Released demand of one (plant, SKU) window: units, the orders behind them, the product. */
    static final Schema RELEASED = new Schema.Parser().parse("""
            {"type": "record", "name": "PeerReleased", "namespace": "io.fitstream.kstreams", "fields": [
              {"name": "units", "type": "long"},
              {"name": "orders", "type": {"type": "array", "items": "string"}},
              {"name": "product_id", "type": "string"},
              {"name": "options", "type": {"type": "map", "values": "string"}, "default": {}}
            ]}""");

    /** Event time is the {@code event_time} field of the value, not the Kafka record time. */
    static final class EventTimeExtractor implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            if (record.value() instanceof GenericRecord r && r.get("event_time") instanceof Long t) {
                return t;
            }
            return -1; // dropped and counted by Kafka Streams (a negative timestamp)
        }
    }

    final Settings settings;
    final Routing routing;
    final FramedAvroSerde clicks = new FramedAvroSerde(FramedAvroSerde.load("click-event.avsc"), FramedAvroSerde.CLICK_EVENT);
    final FramedAvroSerde purchases = new FramedAvroSerde(FramedAvroSerde.load("purchase-event.avsc"), FramedAvroSerde.PURCHASE_EVENT);
    final FramedAvroSerde abandonments = new FramedAvroSerde(FramedAvroSerde.load("cart-abandonment.avsc"), FramedAvroSerde.CART_ABANDONMENT);
    final FramedAvroSerde buildOrders = new FramedAvroSerde(FramedAvroSerde.load("build-order.avsc"), FramedAvroSerde.BUILD_ORDER);
    final FramedAvroSerde lines = new FramedAvroSerde(LINE, -1);
    final FramedAvroSerde released = new FramedAvroSerde(RELEASED, -1);
    final AtomicLong inputRecords = new AtomicLong();
    final AtomicLong abandonmentsOut = new AtomicLong();
    final AtomicLong buildOrdersOut = new AtomicLong();

    PlannerPeer(Settings settings, Routing routing) {
        this.settings = settings;
        this.routing = routing;
    }

    Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        EventTimeExtractor eventTime = new EventTimeExtractor();

        // Add-to-cart events, re-keyed by (customer, SKU): the join's key.
        KStream<String, GenericRecord> carts = builder
                .stream(settings.clickstream, Consumed.with(Serdes.String(), clicks).withTimestampExtractor(eventTime)
                        .withName("clickstream"))
                .peek((k, v) -> inputRecords.incrementAndGet(), Named.as("count-clicks"))
                .filter((k, c) -> c != null && "ADD_TO_CART".equals(String.valueOf(c.get("event_type")))
                        && c.get("sku") != null && c.get("product_id") != null, Named.as("add-to-cart"))
                .selectKey((k, c) -> c.get("customer_id") + "|" + c.get("sku"), Named.as("cart-key"));

        // Purchase lines, keyed by (customer, SKU).
        KStream<String, GenericRecord> purchaseLines = builder
                .stream(settings.purchases, Consumed.with(Serdes.String(), purchases).withTimestampExtractor(eventTime)
                        .withName("purchases"))
                .peek((k, v) -> inputRecords.incrementAndGet(), Named.as("count-purchases"))
                .flatMap((k, p) -> {
                    List<KeyValue<String, GenericRecord>> out = new ArrayList<>();
                    for (Object o : (List<?>) p.get("lines")) {
                        GenericRecord l = (GenericRecord) o;
                        GenericRecord line = new GenericData.Record(LINE);
                        line.put("order_id", p.get("order_id").toString());
                        line.put("product_id", l.get("product_id").toString());
                        line.put("sku", l.get("sku").toString());
                        line.put("category", l.get("category") == null ? null : l.get("category").toString());
                        line.put("options", l.get("options"));
                        line.put("quantity", l.get("quantity"));
                        out.add(KeyValue.pair(p.get("customer_id") + "|" + l.get("sku"), line));
                    }
                    return out;
                }, Named.as("purchase-lines"));

        // Cart -> purchase left join: a cart at t converts with a purchase line of the same
        // customer and SKU in [t, t + 30 min]; unmatched carts come out null-padded once the
        // join window plus grace has passed in stream time.
        carts.leftJoin(purchaseLines,
                        (cart, line) -> line == null ? abandonment(cart) : null,
                        JoinWindows.ofTimeDifferenceAndGrace(CART_WINDOW, GRACE).before(Duration.ZERO),
                        StreamJoined.with(Serdes.String(), clicks, lines).withName("cart-purchase")
                                .withStoreName("cart-purchase"))
                .filter((k, a) -> a != null, Named.as("abandoned"))
                .selectKey((k, a) -> a.get("customer_id").toString(), Named.as("abandonment-key"))
                .peek((k, v) -> abandonmentsOut.incrementAndGet(), Named.as("count-abandonments"))
                .to(settings.cartAbandonment, Produced.with(Serdes.String(), abandonments).withName("abandonments"));

        // Released demand: purchase lines per (plant, SKU) in 15-minute tumbling windows,
        // final results only, one build order per closed window on the plant's topic.
        purchaseLines
                .groupBy((k, line) -> routing.route(line.get("sku").toString(), str(line.get("category"))) + "|"
                        + line.get("sku"), Grouped.with("released-demand", Serdes.String(), lines))
                .windowedBy(TimeWindows.ofSizeAndGrace(BUILD_WINDOW, GRACE))
                .aggregate(PlannerPeer::noDemand, (key, line, agg) -> add(agg, line),
                        Materialized.<String, GenericRecord, WindowStore<Bytes, byte[]>>as("released-demand")
                                .withKeySerde(Serdes.String()).withValueSerde(released))
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()).withName("window-close"))
                .toStream(Named.as("closed-windows"))
                .map((windowed, agg) -> KeyValue.pair(skuOf(windowed.key()), buildOrder(windowed, agg)),
                        Named.as("build-order"))
                .peek((k, v) -> buildOrdersOut.incrementAndGet(), Named.as("count-build-orders"))
                .to((sku, order, ctx) -> settings.buildOrdersTopic(plantOf(order)),
                        Produced.with(Serdes.String(), buildOrders).withName("build-orders"));
        return builder.build();
    }

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    private static String skuOf(String plantAndSku) {
        return plantAndSku.substring(plantAndSku.indexOf('|') + 1);
    }

    private static String plantOf(GenericRecord order) {
        return ((GenericRecord) order.get("location")).get("site").toString();
    }

    GenericRecord abandonment(GenericRecord cart) {
        GenericRecord a = new GenericData.Record(abandonments.schema());
        long t = (Long) cart.get("event_time");
        a.put("customer_id", cart.get("customer_id").toString());
        a.put("session_id", cart.get("session_id").toString());
        a.put("product_id", cart.get("product_id").toString());
        a.put("sku", cart.get("sku").toString());
        a.put("category", str(cart.get("category")));
        a.put("segment_id", null);
        a.put("segment_label", "unassigned"); // the segment table is not implemented (README)
        a.put("carted_at", t);
        a.put("window_closed_at", t + CART_WINDOW.toMillis());
        a.put("source_event_id", cart.get("event_id").toString());
        return a;
    }

    static GenericRecord noDemand() {
        GenericRecord r = new GenericData.Record(RELEASED);
        r.put("units", 0L);
        r.put("orders", new ArrayList<String>());
        r.put("product_id", "");
        r.put("options", new HashMap<String, String>());
        return r;
    }

    static GenericRecord add(GenericRecord agg, GenericRecord line) {
        agg.put("units", (Long) agg.get("units") + (Integer) line.get("quantity"));
        @SuppressWarnings("unchecked")
        List<Object> orders = (List<Object>) agg.get("orders");
        String order = line.get("order_id").toString();
        if (orders.stream().noneMatch(o -> o.toString().equals(order))) {
            orders.add(order);
        }
        agg.put("product_id", line.get("product_id").toString());
        agg.put("options", line.get("options"));
        return agg;
    }

    /** The ISA-95 ProductionRequest of a closed window, with fitstream's deterministic id. */
    GenericRecord buildOrder(Windowed<String> windowed, GenericRecord agg) {
        Schema schema = buildOrders.schema();
        String key = windowed.key();
        String plant = key.substring(0, key.indexOf('|'));
        String sku = skuOf(key);
        long start = windowed.window().start();
        long end = windowed.window().end();
        long units = (Long) agg.get("units");
        TreeMap<String, String> options = new TreeMap<>();
        ((Map<?, ?>) agg.get("options")).forEach((k, v) -> options.put(k.toString(), v.toString()));
        Routing.Plant p = routing.plants.get(plant);

        GenericRecord order = new GenericData.Record(schema);
        order.put("request_id", requestId(plant, sku, options, start, end));
        order.put("request_state", new GenericData.EnumSymbol(schema.getField("request_state").schema(), "Released"));
        order.put("product_production_rule_id", agg.get("product_id").toString());
        order.put("material_definition_id", sku);
        order.put("quantity", decimal(units));
        order.put("unit_of_measure", "EA");
        Schema paramSchema = schema.getField("parameters").schema().getElementType();
        List<GenericRecord> params = new ArrayList<>();
        options.forEach((k, v) -> {
            GenericRecord param = new GenericData.Record(paramSchema);
            param.put("id", k);
            param.put("value", v);
            params.add(param);
        });
        order.put("parameters", params);
        GenericRecord location = new GenericData.Record(schema.getField("location").schema());
        location.put("site", plant);
        location.put("area", p == null ? "" : p.area());
        location.put("line", p == null ? "" : p.line());
        order.put("location", location);
        order.put("earliest_start", end);
        order.put("latest_end", end + (p == null ? 24 : p.leadTimeHours()) * 3_600_000L);
        order.put("priority", RELEASED_PRIORITY + (int) Math.max(0, Math.min(units, 100)));
        order.put("order_count", ((List<?>) agg.get("orders")).size());
        Schema shareSchema = schema.getField("segment_mix").schema().getElementType();
        GenericRecord share = new GenericData.Record(shareSchema);
        share.put("segment_id", null);
        share.put("segment_label", "unassigned");
        share.put("quantity", decimal(units));
        order.put("segment_mix", List.of(share));
        order.put("window_start", start);
        order.put("window_end", end);
        order.put("model_version", null);
        return order;
    }

    private static ByteBuffer decimal(long units) {
        return ByteBuffer.wrap(BigDecimal.valueOf(units).setScale(3).unscaledValue().toByteArray());
    }

    /** fitstream's request id (services/planner/src/planner/outputs.rs, request_id). */
    static String requestId(String plant, String sku, TreeMap<String, String> options, long start, long end) {
        try {
            MessageDigest h = MessageDigest.getInstance("SHA-256");
            for (String part : new String[] {plant, sku, "Released"}) {
                h.update(part.getBytes(StandardCharsets.UTF_8));
                h.update((byte) 0);
            }
            options.forEach((k, v) -> {
                h.update(k.getBytes(StandardCharsets.UTF_8));
                h.update((byte) 1);
                h.update(v.getBytes(StandardCharsets.UTF_8));
                h.update((byte) 0);
            });
            h.update(ByteBuffer.allocate(16).putLong(start).putLong(end).array());
            byte[] digest = h.digest();
            return "pr-" + HexFormat.of().formatHex(digest, 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    Properties properties() {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, settings.applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, settings.bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, settings.threads);
        p.put(StreamsConfig.STATE_DIR_CONFIG, settings.stateDir);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // Null-padded join results are emitted at most once per this much wall-clock time
        // (default 1000 ms), and only while records arrive: 0 checks after every record, so
        // the flush record at the end of a bounded input emits every abandonment (README).
        p.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX,
                settings.outerJoinEmitIntervalMs);
        // A task merges its input partitions in timestamp order only while each has buffered
        // records; with the default 0 it goes on with one partition when the other's buffer is
        // momentarily empty, and stream time runs ahead of the lagging side. The join task's two
        // repartition topics need this, or carts are null-padded although a purchase matched
        // them (README: 2,896 spurious abandonments of 4,667 in one replay with the default).
        // 1 s was not enough at startup, while the consumers do not yet know the repartition
        // topics the leader has just created (README, "Known flakiness").
        p.put(StreamsConfig.MAX_TASK_IDLE_MS_CONFIG, 10_000L);
        p.putAll(settings.extra);
        return p;
    }

    // ------------------------------------------------------------------ running

    /** Command-line settings. */
    static final class Settings {
        String bootstrap = "127.0.0.1:9092";
        String applicationId = "fitstream-kstreams-peer";
        String clickstream = "iob.clickstream.v1";
        String purchases = "iob.purchases.v1";
        String cartAbandonment = "marketing.cart-abandonment.v1";
        String buildOrders = "factory.{plant}.build-orders.v1";
        Path plants = Path.of("deploy/plants.toml");
        int threads = Runtime.getRuntime().availableProcessors();
        String stateDir = System.getProperty("java.io.tmpdir") + "/kafka-streams-peer";
        long outerJoinEmitIntervalMs = 0;
        boolean untilEnd = false;
        long quietMs = 1_000;
        Map<String, String> extra = new HashMap<>();

        String buildOrdersTopic(String plant) {
            return buildOrders.replace("{plant}", plant);
        }

        static Settings parse(String[] args) {
            Settings s = new Settings();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("--until-end")) {
                    s.untilEnd = true;
                    continue;
                }
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value of " + a);
                }
                String v = args[++i];
                switch (a) {
                    case "--bootstrap" -> s.bootstrap = v;
                    case "--application-id" -> s.applicationId = v;
                    case "--clickstream" -> s.clickstream = v;
                    case "--purchases" -> s.purchases = v;
                    case "--cart-abandonment" -> s.cartAbandonment = v;
                    case "--build-orders" -> s.buildOrders = v;
                    case "--plants" -> s.plants = Path.of(v);
                    case "--threads" -> s.threads = Integer.parseInt(v);
                    case "--state-dir" -> s.stateDir = v;
                    case "--outer-join-emit-interval-ms" -> s.outerJoinEmitIntervalMs = Long.parseLong(v);
                    case "--quiet-ms" -> s.quietMs = Long.parseLong(v);
                    case "--set" -> {
                        int eq = v.indexOf('=');
                        s.extra.put(v.substring(0, eq), v.substring(eq + 1));
                    }
                    default -> throw new IllegalArgumentException("unknown flag " + a);
                }
            }
            return s;
        }
    }

    static final String USAGE = """
            usage: java -jar kafka-streams-peer.jar [--bootstrap B] [--application-id ID]
                [--clickstream T] [--purchases T] [--cart-abandonment T] [--build-orders 'factory.{plant}.build-orders.v1']
                [--plants deploy/plants.toml] [--threads N] [--state-dir DIR]
                [--outer-join-emit-interval-ms MS] [--set streams.config=value]... [--until-end [--quiet-ms MS]]
            --until-end: stop once every input record as of start is processed and committed, then every
            record of the repartition topics, and the group's committed offsets stayed unchanged for
            --quiet-ms (default 1000).""";

    public static void main(String[] args) throws Exception {
        Settings settings;
        try {
            settings = Settings.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage() + "\n" + USAGE);
            System.exit(2);
            return;
        }
        PlannerPeer peer = new PlannerPeer(settings, Routing.load(settings.plants));
        long started = System.nanoTime();
        Properties props = peer.properties();
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, settings.bootstrap))) {
            int partitions = admin.describeTopics(List.of(settings.clickstream)).allTopicNames().get()
                    .get(settings.clickstream).partitions().size();
            List<String> outputs = new ArrayList<>(List.of(settings.cartAbandonment));
            peer.routing.plants.keySet().forEach(p -> outputs.add(settings.buildOrdersTopic(p)));
            createTopics(admin, outputs, partitions);
            Map<TopicPartition, Long> inputEnds = endOffsets(admin, inputPartitions(admin, settings));

            KafkaStreams streams = new KafkaStreams(peer.topology(), props);
            CountDownLatch stopped = new CountDownLatch(1);
            streams.setUncaughtExceptionHandler(e -> {
                System.err.println("kafka-streams-peer: stream thread failed: " + e);
                stopped.countDown();
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                streams.close(Duration.ofSeconds(30));
                stopped.countDown();
            }));
            streams.start();
            long finished = 0;
            if (settings.untilEnd) {
                finished = awaitEnd(admin, settings, inputEnds, stopped);
                streams.close(Duration.ofSeconds(60));
            } else {
                stopped.await();
            }
            double seconds = ((finished == 0 ? System.nanoTime() : finished) - started) / 1e9;
            System.out.printf("kafka-streams-peer: input records %d, abandonments %d, build orders %d, %.1f s to the last commit%n",
                    peer.inputRecords.get(), peer.abandonmentsOut.get(), peer.buildOrdersOut.get(), seconds);
            if (streams.state() == KafkaStreams.State.ERROR || finished < 0) {
                System.exit(1);
            }
        }
    }

    static void createTopics(Admin admin, List<String> topics, int partitions) throws Exception {
        for (String t : topics) {
            try {
                admin.createTopics(List.of(new NewTopic(t, partitions, (short) -1))).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
    }

    static List<TopicPartition> inputPartitions(Admin admin, Settings s) throws Exception {
        List<TopicPartition> out = new ArrayList<>();
        admin.describeTopics(List.of(s.clickstream, s.purchases)).allTopicNames().get().forEach((name, d) ->
                d.partitions().forEach(p -> out.add(new TopicPartition(name, p.partition()))));
        return out;
    }

    static Map<TopicPartition, Long> endOffsets(Admin admin, List<TopicPartition> partitions) throws Exception {
        Map<TopicPartition, OffsetSpec> spec = new HashMap<>();
        partitions.forEach(tp -> spec.put(tp, OffsetSpec.latest()));
        Map<TopicPartition, Long> out = new HashMap<>();
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : admin
                .listOffsets(spec, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get().entrySet()) {
            out.put(e.getKey(), e.getValue().offset());
        }
        return out;
    }

    /**
     * Waits until the group has committed every input offset as of start, then every record of
     * its repartition topics (their read_committed end offsets: once the inputs are committed,
     * nothing more is written to them), and its committed offsets then stay unchanged for the
     * quiet time. Returns System.nanoTime() of
     * the last change of committed offsets, or -1 when a thread failed.
     */
    static long awaitEnd(Admin admin, Settings s, Map<TopicPartition, Long> inputEnds, CountDownLatch failed)
            throws Exception {
        Map<TopicPartition, Long> last = Map.of();
        List<TopicPartition> repartitions = null;
        long lastChange = System.nanoTime();
        while (true) {
            if (failed.await(100, TimeUnit.MILLISECONDS)) {
                return -1;
            }
            Map<TopicPartition, OffsetAndMetadata> committed = admin
                    .listConsumerGroupOffsets(s.applicationId).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> now = new HashMap<>();
            committed.forEach((tp, om) -> {
                if (om != null) {
                    now.put(tp, om.offset());
                }
            });
            if (!now.equals(last)) {
                last = now;
                lastChange = System.nanoTime();
            }
            boolean inputsDone = inputEnds.entrySet().stream()
                    .allMatch(e -> e.getValue() == 0 || now.getOrDefault(e.getKey(), -1L) >= e.getValue());
            if (!inputsDone) {
                continue;
            }
            if (repartitions == null) {
                String prefix = s.applicationId + "-";
                List<String> topics = admin.listTopics().names().get().stream()
                        .filter(t -> t.startsWith(prefix) && t.endsWith("-repartition")).toList();
                List<TopicPartition> partitions = new ArrayList<>();
                admin.describeTopics(topics).allTopicNames().get().forEach((name, d) ->
                        d.partitions().forEach(p -> partitions.add(new TopicPartition(name, p.partition()))));
                repartitions = partitions;
            }
            // Read again every time: a commit's markers reach the partitions after the commit.
            Map<TopicPartition, Long> repartitionEnds = endOffsets(admin, repartitions);
            // Written transactionally, a repartition partition ends with a commit marker, which
            // no consumer position needs to pass: one short of the end is the end.
            boolean repartitionsDone = repartitionEnds.entrySet().stream()
                    .allMatch(e -> e.getValue() == 0 || now.getOrDefault(e.getKey(), -1L) >= e.getValue() - 1);
            if (repartitionsDone && System.nanoTime() - lastChange >= s.quietMs * 1_000_000L) {
                return lastChange;
            }
        }
    }
}
