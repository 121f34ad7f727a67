package ftrust.trust;

/** A certificate's revocation status as the provider knows it now, with the reason in words. */
final class Verdict {
    enum Kind { GOOD, REVOKED, UNKNOWN }

    final Kind kind;
    final String reason;

    private Verdict(Kind kind, String reason) {
        this.kind = kind;
        this.reason = reason;
    }

    static Verdict good(String how) {
        return new Verdict(Kind.GOOD, how);
    }

    static Verdict revoked(String how) {
        return new Verdict(Kind.REVOKED, how);
    }

    static Verdict unknown(String why) {
        return new Verdict(Kind.UNKNOWN, why);
    }

    boolean good() {
        return kind == Kind.GOOD;
    }
}
