package io.fitstream.kstreams;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * A Serde of Avro {@link GenericRecord}s on the Avro library. Framed: the Confluent wire format
 * (magic byte 0, 4-byte big-endian schema id, Avro binary), with the schema id pinned the way
 * fitstream pins it without a registry (1001 + the schema's index, see
 * crates/contracts/src/registry.rs); a value with another id or magic byte is refused. Unframed
 * (id &lt; 0): plain Avro binary, for the peer's internal topics.
 */
public final class FramedAvroSerde implements Serde<GenericRecord> {
    // fitstream's SchemaKind::ALL order; default pinned id = 1001 + index.
    static final int CLICK_EVENT = 1001;
    static final int PURCHASE_EVENT = 1002;
    static final int CART_ABANDONMENT = 1007;
    static final int BUILD_ORDER = 1008;

    private final Schema schema;
    private final int id;
    private final GenericDatumWriter<GenericRecord> writer;
    private final GenericDatumReader<GenericRecord> reader;

    FramedAvroSerde(Schema schema, int id) {
        this.schema = schema;
        this.id = id;
        this.writer = new GenericDatumWriter<>(schema);
        this.reader = new GenericDatumReader<>(schema);
    }

    /** A schema from the packaged schemas/ directory (the repository's schemas/*.avsc). */
    static Schema load(String file) {
        try (InputStream in = FramedAvroSerde.class.getResourceAsStream("/schemas/" + file)) {
            if (in == null) {
                throw new IllegalStateException("schema " + file + " not packaged");
            }
            return new Schema.Parser().parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    Schema schema() {
        return schema;
    }

    @Override
    public Serializer<GenericRecord> serializer() {
        return (topic, record) -> {
            if (record == null) {
                return null;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(128);
            if (id >= 0) {
                out.write(0);
                out.writeBytes(ByteBuffer.allocate(4).putInt(id).array());
            }
            try {
                BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
                writer.write(record, enc);
                enc.flush();
            } catch (IOException e) {
                throw new SerializationException("Avro encoding for " + topic, e);
            }
            return out.toByteArray();
        };
    }

    @Override
    public Deserializer<GenericRecord> deserializer() {
        return (topic, bytes) -> {
            if (bytes == null) {
                return null;
            }
            int offset = 0;
            if (id >= 0) {
                if (bytes.length < 5 || bytes[0] != 0) {
                    throw new SerializationException("not Confluent-framed Avro on " + topic);
                }
                int got = ByteBuffer.wrap(bytes, 1, 4).getInt();
                if (got != id) {
                    throw new SerializationException("schema id " + got + " on " + topic + ", expected " + id);
                }
                offset = 5;
            }
            try {
                BinaryDecoder dec = DecoderFactory.get().binaryDecoder(bytes, offset, bytes.length - offset, null);
                return reader.read(null, dec);
            } catch (IOException | RuntimeException e) {
                throw new SerializationException("Avro decoding on " + topic, e);
            }
        };
    }
}
