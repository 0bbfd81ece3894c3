package dev.fitstream.consumer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;

import org.apache.avro.Conversions;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads one of fitstream's topics and prints each record as one JSON object per line, the way
 * a team subscribes to its outputs (docs/consumers.md): read_committed; values are
 * Confluent-framed Avro (magic byte 0, a 4-byte big-endian schema id, then Avro binary) decoded
 * with the repository's schemas by topic; progress markers (the {@code fitstream.watermark}
 * header, no value) skipped unless {@code --markers}; a record without a value is a tombstone;
 * dead letters print their headers and original bytes.
 *
 * <pre>java -jar fitstream-consumer.jar --bootstrap 127.0.0.1:9092 --topic factory.berlin.build-orders.v1
 *     [--from-end] [--group G] [--idle-seconds 5] [--markers]</pre>
 */
public final class Consume {
    private static final String WATERMARK_HEADER = "fitstream.watermark";
    private static final String[][] KINDS = {
        {"build-orders", "build-order.avsc"},
        {"cart-abandonment", "cart-abandonment.avsc"},
        {"customer-profiles", "customer-profile.avsc"},
        {"segment-models", "segment-model.avsc"},
        {"segment-assignments", "segment-assignment.avsc"},
        {"segment-profiles", "segment-profile.avsc"},
        {"clickstream", "click-event.avsc"},
        {"purchases", "purchase-event.avsc"},
    };

    static Schema schemaFor(String topic) throws IOException {
        if (topic.contains("dead-letter")) {
            return null;
        }
        for (String[] kind : KINDS) {
            if (topic.contains(kind[0])) {
                try (InputStream in = Consume.class.getResourceAsStream("/schemas/" + kind[1])) {
                    return new Schema.Parser().parse(in);
                }
            }
        }
        throw new IllegalArgumentException("no schema for topic " + topic);
    }

    /** A JSON string literal. */
    static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = "127.0.0.1:9092";
        String topic = null;
        String group = null;
        boolean fromEnd = false;
        boolean markers = false;
        long idleSeconds = 5;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[++i];
                case "--topic" -> topic = args[++i];
                case "--group" -> group = args[++i];
                case "--from-end" -> fromEnd = true;
                case "--markers" -> markers = true;
                case "--idle-seconds" -> idleSeconds = Long.parseLong(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (topic == null) {
            throw new IllegalArgumentException("--topic is required");
        }
        Schema schema = schemaFor(topic);
        // Decimals (quantities, prices) as BigDecimal; timestamps stay epoch milliseconds.
        GenericData data = new GenericData();
        data.addLogicalTypeConversion(new Conversions.DecimalConversion());
        GenericDatumReader<GenericRecord> reader =
                schema == null ? null : new GenericDatumReader<>(schema, schema, data);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group != null ? group : "consume-java-" + UUID.randomUUID());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, fromEnd ? "latest" : "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, String.valueOf(group != null));
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            // The idle time counts from the assignment: joining a new group alone can take
            // longer (the broker's group.initial.rebalance.delay.ms is 3 s by default).
            long[] last = {0};
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    if (last[0] == 0) {
                        last[0] = System.nanoTime();
                    }
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}
            });
            long started = System.nanoTime();
            while (true) {
                long now = System.nanoTime();
                if (last[0] == 0 && now - started > 60_000_000_000L) {
                    throw new IOException("no partitions of " + topic + " assigned within 60 s");
                }
                if (last[0] != 0 && now - last[0] >= idleSeconds * 1_000_000_000L) {
                    break;
                }
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    last[0] = System.nanoTime();
                    Map<String, String> headers = new LinkedHashMap<>();
                    for (Header h : r.headers()) {
                        headers.put(h.key(), h.value() == null ? "" : new String(h.value(), StandardCharsets.UTF_8));
                    }
                    StringBuilder out = new StringBuilder("{\"topic\":").append(str(r.topic()))
                            .append(",\"partition\":").append(r.partition())
                            .append(",\"offset\":").append(r.offset())
                            .append(",\"key\":").append(str(r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8)))
                            .append(",\"timestamp\":").append(r.timestamp());
                    if (headers.containsKey(WATERMARK_HEADER)) {
                        if (!markers) {
                            continue;
                        }
                        out.append(",\"progress_marker\":").append(str(headers.get(WATERMARK_HEADER)));
                    } else if (r.value() == null) {
                        out.append(",\"tombstone\":true");
                    } else if (reader == null) {
                        out.append(",\"headers\":{");
                        String sep = "";
                        for (Map.Entry<String, String> e : headers.entrySet()) {
                            out.append(sep).append(str(e.getKey())).append(':').append(str(e.getValue()));
                            sep = ",";
                        }
                        out.append("},\"value_hex\":").append(str(HexFormat.of().formatHex(r.value())));
                    } else {
                        ByteBuffer b = ByteBuffer.wrap(r.value());
                        if (b.remaining() < 5 || b.get() != 0) {
                            throw new IOException("not Confluent-framed Avro at " + r.topic() + "/" + r.partition() + "@" + r.offset());
                        }
                        int schemaId = b.getInt();
                        GenericRecord value = reader.read(null, DecoderFactory.get()
                                .binaryDecoder(r.value(), 5, r.value().length - 5, null));
                        // GenericRecord.toString() is JSON: decimals as numbers, enums as strings.
                        out.append(",\"schema_id\":").append(schemaId).append(",\"value\":").append(value);
                    }
                    System.out.println(out.append('}'));
                }
            }
        }
    }
}
