// hqflow_lif_unit: the LIF of one lane group over its T steps, L = LIF_LANES neurons a cycle, beside the
// accumulation that hands it the group's P x T sums (hqflow_stream_wlif.v). Exactly numerics lif_step:
//   charge  x = v + I,   I = (acc << F) + (bias_int << T),   h = x >>> 1      (v = 0 at t = 0)
//   fire    s = sign > 0 ? h >= thr : sign < 0 ? h <= -thr : thr <= 0
//   reset   v' = s ? 0 : h
// computed as two adds side by side, so that the membrane's loop is one carry chain and one LUT:
//   x = v + I    (V_BITS)        e = v + D,  D = (acc << F) + FIRE    (V_BITS + 3)
//   s = NEG ? e < 0 : e >= 0     v' = s or t = T - 1 ? 0 : x >>> 1    (the last step leaves v = 0)
// with the per-channel constants of memfiles.lif_step_tables, L channels a line (line g M + k):
//   CHARGE = bias_int << T                       (mod 2^V_BITS)
//   FIRE   = (bias_int << T) - 2 thr_int         sign +1: h >= thr  <=>  x >= 2 thr      (mod 2^(V_BITS + 3))
//            (bias_int << T) + 2 thr_int - 2     sign -1: h <= -thr <=>  x < 2 - 2 thr
//            (bias_int << T) +- 2^(V_BITS + 1)   sign  0: a fixed sign (+ when thr <= 0)
//   NEG    = sign < 0
// Every sum is taken modulo its width and each true value fits it (numerics.membrane_bits: v, I and x fit
// V_BITS; |e| < 2^(V_BITS + 2)), so every result is exact.
// Chunk c = t M + k (step t, lanes k L .. k L + L - 1; M = P / L) of the sums: bits [c L ACC_BITS, +L ACC_BITS).
// Three stages, each a register: SELECT (the next chunk out of the sums, which turn by a chunk a cycle:
// no multiplexer; its table line read), PREPARE (I and D), RUN (charge, fire, reset; the membranes and
// spike words turn by L lanes a cycle, back in place after a step's M chunks). A group: `take` (the unit `ready`) in cycle n; RUN in cycles n + 2 .. n + T M + 1;
// its P spike words (`words`, lane p in bits [p T, p T + T), bit t = step t) held from n + T M + 2 with
// `done` until `words_taken`; `ready` again the cycle after: T M + 3 cycles, at least, from take to take.
module hqflow_lif_unit #(
    parameter integer P = 1, LIF_LANES = 1, T = 1, ACC_BITS = 16, V_BITS = 32, F = 0, LINES = 1,
    parameter CHARGE_FILE = "charge.mem", FIRE_FILE = "fire.mem", NEG_FILE = "neg.mem"
) (
    input  wire clk,
    input  wire rst,
    input  wire take,                                   // (only when `ready`)
    input  wire [T*P*ACC_BITS-1:0] sums,                // step t, lane p: bits [(t P + p) ACC_BITS, +ACC_BITS)
    input  wire [(LINES > 1 ? $clog2(LINES) : 1)-1:0] line, // the group's first table line, g M
    output reg  ready,
    output reg  done,
    input  wire words_taken,
    output wire [P*T-1:0] words
);
    localparam integer L = LIF_LANES;
    localparam integer M = P / L;
    localparam integer TM = T * M;
    localparam integer E_BITS = V_BITS + 3;
    localparam integer TA = LINES > 1 ? $clog2(LINES) : 1;
    localparam integer MB = M > 1 ? $clog2(M) : 1;
    initial if (L < 1 || P % L != 0) $error("hqflow_lif_unit: LIF_LANES %0d must divide P %0d", L, P);

    // ---- SELECT: the next chunk of the sums (their lowest: they turn a chunk a cycle), its table line ----
    reg [T*P*ACC_BITS-1:0] lacc;        // the group taken, chunks cs .. at the bottom
    reg [TM-1:0] sel;                   // one-hot: the chunk selected at the next edge
    reg selecting;                      // sel holds one (chunks 1 .. TM - 1 still to select)
    reg [MB-1:0] ks;                    // its lane chunk k = cs mod M
    reg [TA-1:0] base, taddr;           // g M; the table line of the chunk selected next
    reg [L*ACC_BITS-1:0] chunk;
    wire [TA-1:0] tab_addr = take ? line : taddr;
    wire [L*V_BITS-1:0] charge_q; wire [L*E_BITS-1:0] fire_q; wire [L-1:0] neg_q;
    hqflow_weight_rom #(.WIDTH(L*V_BITS), .DEPTH(LINES), .AW(TA), .FILE(CHARGE_FILE)) charge_rom (clk, tab_addr, charge_q);
    hqflow_weight_rom #(.WIDTH(L*E_BITS), .DEPTH(LINES), .AW(TA), .FILE(FIRE_FILE)) fire_rom (clk, tab_addr, fire_q);
    hqflow_weight_rom #(.WIDTH(L), .DEPTH(LINES), .AW(TA), .FILE(NEG_FILE)) neg_rom (clk, tab_addr, neg_q);
    reg s_valid, s_last, s_end;         // `chunk` and the tables hold a chunk; of step T - 1; the group's last
    localparam integer LAST0 = (T - 1) * M;     // the first chunk of step T - 1

    // ---- PREPARE: I and D of the chunk --------------------------------------------------------------
    reg [L*V_BITS-1:0] in_i;            // I per lane
    reg [L*E_BITS-1:0] in_d;            // D per lane
    reg [L-1:0] neg;
    reg r_valid, r_last, r_end;
    integer pl;
    always @(posedge clk) begin
        r_valid <= s_valid && !rst; r_last <= s_last; r_end <= s_end;
        neg <= neg_q;
        for (pl = 0; pl < L; pl = pl + 1) begin : prepare
            reg [E_BITS-1:0] shifted;   // acc << F, sign-extended (mod 2^E_BITS)
            shifted = {{E_BITS{chunk[pl*ACC_BITS + ACC_BITS - 1]}}, chunk[pl*ACC_BITS +: ACC_BITS]} << F;
            in_i[pl*V_BITS +: V_BITS] <= shifted[V_BITS-1:0] + charge_q[pl*V_BITS +: V_BITS];
            in_d[pl*E_BITS +: E_BITS] <= shifted + fire_q[pl*E_BITS +: E_BITS];
        end
    end

    // ---- RUN: charge, fire, reset of the L neurons at the bottom of the turning membranes -------------
    reg [P*V_BITS-1:0] v;
    reg [P*T-1:0] spk;
    reg [L*V_BITS-1:0] v_next;
    reg [L-1:0] spikes;
    integer rl;
    always @* begin
        for (rl = 0; rl < L; rl = rl + 1) begin : step
            reg [V_BITS-1:0] x;
            reg [E_BITS-1:0] e;
            x = v[rl*V_BITS +: V_BITS] + in_i[rl*V_BITS +: V_BITS];
            e = {{3{v[rl*V_BITS + V_BITS - 1]}}, v[rl*V_BITS +: V_BITS]} + in_d[rl*E_BITS +: E_BITS];
            spikes[rl] = neg[rl] ? e[E_BITS-1] : !e[E_BITS-1];
            v_next[rl*V_BITS +: V_BITS] = spikes[rl] || r_last ? {V_BITS{1'b0}} : {x[V_BITS-1], x[V_BITS-1:1]};
        end
    end
    reg [P*T-1:0] spk_words;            // the chunk's spikes shifted in as step t of its lanes' words
    reg [P*V_BITS-1:0] v_wide;
    integer l;
    always @* begin
        spk_words = 0;
        for (l = 0; l < L; l = l + 1)
            spk_words[l*T +: T] = (spk[l*T +: T] >> 1) | ({{(T > 1 ? T - 1 : 1){1'b0}}, spikes[l]} << (T - 1));
        v_wide = v_next;
    end
    assign words = spk;                 // (still while `done`)

    always @(posedge clk) begin
        s_valid <= selecting || take;
        if (take) begin
            lacc <= sums >> (L * ACC_BITS);
            chunk <= sums[L*ACC_BITS-1:0];
            s_last <= T == 1; s_end <= TM == 1;
            sel <= 2; selecting <= TM > 1;
            base <= line;
            ks <= M > 1 ? 1 : 0;
            taddr <= M > 1 ? line + 1'b1 : line;
            ready <= 0;
        end else if (selecting) begin
            chunk <= lacc[L*ACC_BITS-1:0];
            lacc <= lacc >> (L * ACC_BITS);
            s_last <= s_last || sel[LAST0]; s_end <= sel[TM-1];    // (the chunks go in order)
            sel <= sel << 1; selecting <= !sel[TM-1];
            ks <= ks == M - 1 ? 0 : ks + 1'b1;
            taddr <= ks == M - 1 ? base : taddr + 1'b1;
        end
        if (r_valid) begin
            v <= (v >> (L * V_BITS)) | (v_wide << ((P - L) * V_BITS));
            spk <= (spk >> (L * T)) | (spk_words << ((P - L) * T));
            if (r_end) done <= 1;
        end
        if (words_taken) begin done <= 0; ready <= 1; end
        if (rst) begin
            v <= 0; ready <= 1; done <= 0; selecting <= 0; s_valid <= 0;
        end
    end

    initial begin v = 0; ready = 1; done = 0; selecting = 0; s_valid = 0; r_valid = 0; end
endmodule
