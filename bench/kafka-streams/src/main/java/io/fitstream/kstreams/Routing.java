package io.fitstream.kstreams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * deploy/plants.toml, read the way fitstream's planner routes (services/planner/src/routing.rs):
 * a SKU rule, else a category rule (an exact category, a category id listed under
 * {@code [category_ids]}, else the longest dotted prefix rule such as {@code "electronics.*"}),
 * else {@code default_plant}. Only the subset of TOML that file uses: {@code key = "value"},
 * {@code key = number} and one-line {@code key = ["a", "b"]} entries in {@code [categories]},
 * {@code [category_ids]}, {@code [skus]} and {@code [plants.<id>]} tables, comments, quoted keys.
 */
final class Routing {
    record Plant(String area, String line, long leadTimeHours) {}

    final String defaultPlant;
    final Map<String, String> categories = new HashMap<>();
    final Map<String, String> skus = new HashMap<>();
    final Map<String, String> categoryIds = new HashMap<>();
    final Map<String, Plant> plants = new TreeMap<>();

    private Routing(String defaultPlant) {
        this.defaultPlant = defaultPlant;
    }

    static Routing load(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file);
        String table = "";
        String defaultPlant = null;
        Map<String, Map<String, String>> plantFields = new TreeMap<>();
        Map<String, String> categories = new HashMap<>();
        Map<String, String> skus = new HashMap<>();
        Map<String, String> categoryIds = new HashMap<>();
        for (String raw : lines) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("[")) {
                table = line.substring(1, line.indexOf(']')).strip();
                continue;
            }
            int eq = line.indexOf('=');
            if (eq < 0) {
                throw new IOException(file + ": cannot read line: " + raw);
            }
            String key = unquote(line.substring(0, eq).strip());
            String value = line.substring(eq + 1).strip();
            int hash = value.startsWith("\"") ? value.indexOf('#', value.indexOf('"', 1)) : value.indexOf('#');
            if (hash >= 0) {
                value = value.substring(0, hash).strip();
            }
            value = unquote(value);
            if (table.isEmpty() && key.equals("default_plant")) {
                defaultPlant = value;
            } else if (table.equals("categories")) {
                categories.put(key, value);
            } else if (table.equals("skus")) {
                skus.put(key, value);
            } else if (table.equals("category_ids")) {
                String list = value.replace("[", "").replace("]", "");
                for (String id : list.split(",")) {
                    if (!id.isBlank()) {
                        categoryIds.putIfAbsent(unquote(id.strip()), key);
                    }
                }
            } else if (table.startsWith("plants.")) {
                plantFields.computeIfAbsent(unquote(table.substring(7)), k -> new HashMap<>()).put(key, value);
            }
        }
        if (defaultPlant == null) {
            throw new IOException(file + ": no default_plant");
        }
        Routing r = new Routing(defaultPlant);
        r.categories.putAll(categories);
        r.skus.putAll(skus);
        r.categoryIds.putAll(categoryIds);
        plantFields.forEach((id, f) -> r.plants.put(id, new Plant(f.getOrDefault("area", ""),
                f.getOrDefault("line", ""), Long.parseLong(f.getOrDefault("lead_time_hours", "24")))));
        return r;
    }

    private static String unquote(String s) {
        return s.length() >= 2 && s.startsWith("\"") && s.endsWith("\"") ? s.substring(1, s.length() - 1) : s;
    }

    String route(String sku, String category) {
        String p = skus.get(sku);
        if (p != null) {
            return p;
        }
        if (category != null) {
            p = categories.get(category);
            if (p == null) {
                p = categoryIds.get(category);
            }
            // Prefixes from the longest: "a.b.*" before "a.*".
            String path = category;
            for (int dot = path.lastIndexOf('.'); p == null && dot >= 0; dot = path.lastIndexOf('.')) {
                path = path.substring(0, dot);
                p = categories.get(path + ".*");
            }
            if (p != null) {
                return p;
            }
        }
        return defaultPlant;
    }
}
