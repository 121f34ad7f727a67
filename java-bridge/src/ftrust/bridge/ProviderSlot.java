package ftrust.bridge;

import java.security.Security;

/**
 * Prints the first free security.provider.N index of this JVM (the JDK reads providers from
 * security.provider.1 up to the first gap, so the trust provider's entry must be exactly the next).
 */
public final class ProviderSlot {
    private ProviderSlot() {}

    public static void main(String[] args) {
        int n = 1;
        while (Security.getProperty("security.provider." + n) != null) {
            n++;
        }
        System.out.println(n);
    }
}
