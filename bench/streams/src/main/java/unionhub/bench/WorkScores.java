package unionhub.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * Evaluation's work-score ingestion as a Kafka Streams application (Processor API): each
 * item counted once (a RocksDB store of the item ids seen), and per month, post and worker the
 * number of items and the sum of their scores in thousandths (a second store). Both stores
 * are logged to changelog topics, as Kafka Streams does by default.
 *
 * Usage: WorkScores bootstrap topic application-id guarantee threads expected state-dir
 * Prints one JSON line: seconds from the first record processed to the last distinct item
 * counted, and the totals read back from the store (items counted, scores summed, duplicates).
 */
public final class WorkScores {
  static final String SEEN = "seen-items";
  static final String MONTHS = "worker-months";
  static final ZoneId SHANGHAI = ZoneId.of("Asia/Shanghai");
  static final DateTimeFormatter MONTH = DateTimeFormatter.ofPattern("yyyy-MM");
  static final AtomicLong counted = new AtomicLong();
  static final AtomicLong duplicates = new AtomicLong();
  static final byte[] PRESENT = {1};
  static volatile long firstNanos = 0;

  static final class Count implements Processor<String, byte[], Void, Void> {
    private final ObjectMapper json = new ObjectMapper();
    private KeyValueStore<String, byte[]> seen;
    private KeyValueStore<String, byte[]> months;

    @Override
    public void init(ProcessorContext<Void, Void> context) {
      seen = context.getStateStore(SEEN);
      months = context.getStateStore(MONTHS);
    }

    @Override
    public void process(Record<String, byte[]> record) {
      if (firstNanos == 0) {
        firstNanos = System.nanoTime();
      }
      JsonNode data;
      try {
        data = json.readTree(record.value()).get("data");
      } catch (java.io.IOException e) {
        return; // not JSON: nothing to count
      }
      String itemId = data.get("item_id").asText();
      if (seen.get(itemId) != null) {
        duplicates.incrementAndGet();
        return;
      }
      seen.put(itemId, PRESENT);
      String month = OffsetDateTime.parse(data.get("scored_at").asText()).atZoneSameInstant(SHANGHAI).format(MONTH);
      String key = month + "|" + data.get("post_id").asText() + "|" + data.get("worker_id").asText();
      long score = Math.round(data.get("score").asDouble() * 1000);
      byte[] before = months.get(key);
      ByteBuffer total = ByteBuffer.allocate(16);
      if (before == null) {
        total.putLong(1).putLong(score);
      } else {
        ByteBuffer old = ByteBuffer.wrap(before);
        total.putLong(old.getLong() + 1).putLong(old.getLong() + score);
      }
      months.put(key, total.array());
      counted.incrementAndGet();
    }
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0], topic = args[1], applicationId = args[2], guarantee = args[3];
    int threads = Integer.parseInt(args[4]);
    long expected = Long.parseLong(args[5]);
    String stateDir = args[6];

    Topology topology = new Topology();
    topology.addSource("work-scores", Serdes.String().deserializer(), Serdes.ByteArray().deserializer(), topic);
    topology.addProcessor("count", Count::new, "work-scores");
    topology.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(SEEN), Serdes.String(), Serdes.ByteArray()), "count");
    topology.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(MONTHS), Serdes.String(), Serdes.ByteArray()), "count");

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    // Tuned as for a throughput job: larger fetches and producer batches for the changelogs.
    props.put(StreamsConfig.consumerPrefix("max.poll.records"), 5000);
    props.put(StreamsConfig.consumerPrefix("fetch.min.bytes"), 65536);
    props.put(StreamsConfig.producerPrefix("linger.ms"), 20);
    props.put(StreamsConfig.producerPrefix("batch.size"), 262144);
    props.put(StreamsConfig.producerPrefix("compression.type"), "lz4");

    KafkaStreams streams = new KafkaStreams(topology, props);
    streams.start();
    long deadline = System.nanoTime() + 900_000_000_000L;
    while (counted.get() < expected) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("counted " + counted.get() + " of " + expected + " in 900 s");
      }
      Thread.sleep(10);
    }
    double seconds = (System.nanoTime() - firstNanos) / 1e9;
    long items = 0, scores = 0, rows = 0;
    while (true) {
      try {
        ReadOnlyKeyValueStore<String, byte[]> store = streams.store(
            StoreQueryParameters.fromNameAndType(MONTHS, QueryableStoreTypes.keyValueStore()));
        try (KeyValueIterator<String, byte[]> all = store.all()) {
          while (all.hasNext()) {
            KeyValue<String, byte[]> row = all.next();
            ByteBuffer total = ByteBuffer.wrap(row.value);
            items += total.getLong();
            scores += total.getLong();
            rows++;
          }
        }
        break;
      } catch (org.apache.kafka.streams.errors.InvalidStateStoreException e) {
        Thread.sleep(50); // a rebalance in progress
      }
    }
    streams.close(java.time.Duration.ofSeconds(30));
    System.out.printf("{\"seconds\": %.4f, \"counted\": %d, \"items\": %d, \"score_milli\": %d, \"rows\": %d, "
        + "\"duplicates\": %d}%n", seconds, counted.get(), items, scores, rows, duplicates.get());
  }
}
