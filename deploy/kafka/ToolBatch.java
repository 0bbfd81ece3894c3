/*
 * Runs Kafka command line tools one after the other in one JVM, for deploy/kafka.sh --secure
 * (a JVM per AclCommand costs 1.5 to 3 s; a sync of k8s/base/users.yaml needs about twenty).
 * Not built: started with Java's source launcher,
 *
 *     java -cp '<kafka libs>/*' deploy/kafka/ToolBatch.java COMMANDS_FILE
 *
 * COMMANDS_FILE has one command a line, its words separated by tabs: a main class and its
 * arguments (deploy/kafka/acls.py plan writes it). Before each command it prints "$ " and the
 * command. A tool that fails exits the JVM (the Kafka tools call exit(1)) or throws, which
 * ends the batch with a non-zero status; the last line "toolbatch: N commands ok" is printed
 * only when all of them returned.
 */

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

public class ToolBatch {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: ToolBatch COMMANDS_FILE");
            System.exit(2);
        }
        List<String> lines = Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8);
        int n = 0;
        for (String line : lines) {
            if (line.isBlank()) {
                continue;
            }
            String[] words = line.split("\t", -1);
            n++;
            System.out.println("$ " + String.join(" ", words));
            System.out.flush();
            Method main = Class.forName(words[0]).getMethod("main", String[].class);
            try {
                main.invoke(null, (Object) Arrays.copyOfRange(words, 1, words.length));
            } catch (InvocationTargetException e) {
                System.out.flush();
                System.err.println("toolbatch: command " + n + " failed: " + e.getCause());
                e.getCause().printStackTrace();
                System.exit(1);
            }
            System.out.flush();
        }
        System.out.println("toolbatch: " + n + " commands ok");
    }
}
