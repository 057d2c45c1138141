// hqflow_stream_ssa: streaming, time-batched spiking self-attention with its attention LIF
// (numerics.ssa_int, then lif_step with the node's one-channel constants), all T steps at once.
//   q, k, v [N][D] spikes, streams of elements n*D + c, each a T-bit word (bit t = step t). Per head h
//   of HD = D / HEADS channels and per step t (spike x spike is an AND, sums count):
//     kv[i][j][t]      = sum_n k[n][h HD + i][t] & v[n][h HD + j][t]       (<= N, KV_BITS)
//     y[n][h HD + j][t] = sum_i q[n][h HD + i][t] ? kv[i][j][t] : 0         (<= N HD, ACC_BITS)
//   then per (n, c) the LIF over t = 0..T-1, the membrane in a register, in the form of hqflow_lif_unit.v
//   (x = v + (y << F) + CHARGE, e = v + (y << F) + FIRE, fire = NEG ? e < 0 : e >= 0: memfiles.lif_step_constants).
// Stream out: elements n*D + c, T-bit spike words; tlast on the last.
// Every token is needed before the first output (each query meets every key), so q is buffered
// whole, N*D words of T bits each (block RAM), as it arrives; k and v only until A has taken their
// token into kv: a ring of two tokens each (2^ceil(log2(2 D)) words: distributed RAM where small), the
// token A works on and the next (k_tready and v_tready wait while both are in). The kv rows (D of them, HD*T
// counts each) are kept in SPLIT slices of HD/SPLIT lanes (kv RAM: D*SPLIT words of HD/SPLIT*T counts,
// word (h HD + i)*SPLIT + s holds lanes s HD/SPLIT .. (s+1) HD/SPLIT - 1 of row h HD + i): a narrower
// RAM (fewer block RAMs where the rows are wide and few) for SPLIT cycles a row. Schedule:
//   A  per token n, as soon as k and v hold it, per head: HD cycles load v's HD words into a register,
//      HD*SPLIT cycles read k's words and add k & v into the kv rows, a slice a cycle;
//      a token starts with two cycles that wait for its k and v (the counts compared, then registered;
//      one for an image's first token: no k or v in, the compare starts from zero);
//   B  when A is done and q is complete (one cycle), per token n and head h: HD*SPLIT cycles accumulate
//      y (HD lanes by T steps, a slice a cycle; q's word and the kv slice registered out of their RAMs
//      before the add), 2 drain cycles, 1 cycle preparing step 0's LIF input,
//      T LIF cycles, 1 cycle handing the HD spike words to the output bank (it waits while the bank
//      drains), which streams them out while the next head works.
// The inputs are taken while the buffers fill (an image at a time: the next is taken after B).
// `active` is high in the cycles the core advances:
//   active cycles per image = N * (2 + D + SPLIT D) + N * HEADS * (SPLIT HD + T + 4)
// The LIF constants: CHARGE (V_BITS two's complement), FIRE (V_BITS + 3), NEG (0 or 1). SPLIT divides HD.
// ULTRA 1: q in UltraRAM (hqflow_ram.v).
module hqflow_stream_ssa #(
    parameter integer N = 4,
    parameter integer D = 4,
    parameter integer HEADS = 1,
    parameter integer T = 1,
    parameter integer ACC_BITS = 8,
    parameter integer V_BITS = 16,
    parameter integer F = 2,
    parameter [63:0] CHARGE = 0,
    parameter [127:0] FIRE = 0,
    parameter integer NEG = 0,
    parameter integer ULTRA = 0,
    parameter integer SPLIT = 1
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           q_tvalid,
    output wire           q_tready,
    input  wire [T-1:0]   q_tdata,
    input  wire           k_tvalid,
    output wire           k_tready,
    input  wire [T-1:0]   k_tdata,
    input  wire           v_tvalid,
    output wire           v_tready,
    input  wire [T-1:0]   v_tdata,
    output wire           m_tvalid,
    input  wire           m_tready,
    output wire [T-1:0]   m_tdata,
    output wire           m_tlast,
    output wire           active
);
    localparam integer HD = D / HEADS;
    localparam integer ND = N * D;
    localparam integer KV_BITS = $clog2(N + 1);
    localparam integer AB = ND > 1 ? $clog2(ND) : 1;
    localparam integer RB = $clog2(2 * D) < AB ? $clog2(2 * D) : AB;   // the k / v rings' address bits
    localparam integer RD = $clog2(2 * D) < AB ? 1 << RB : ND;          // and words (>= 2 D, or all)
    localparam integer HS = HD / SPLIT;         // lanes a kv slice
    localparam integer KB = D * SPLIT > 1 ? $clog2(D * SPLIT) : 1;
    localparam integer SB = SPLIT > 1 ? $clog2(SPLIT) : 1;
    localparam integer NB = $clog2(HD + 1);
    localparam [3:0] S_AWAIT = 4'd0, S_A1 = 4'd1, S_A2 = 4'd2, S_BWAIT = 4'd3, S_B1 = 4'd4, S_DRAIN = 4'd5,
                     S_LIF = 4'd6, S_HAND = 4'd7, S_AWAIT0 = 4'd8, S_PREP = 4'd9, S_DRAIN2 = 4'd10;
    localparam integer E_BITS = V_BITS + 3;

    initial if (HEADS < 1 || D % HEADS != 0) $error("hqflow_stream_ssa: %0d heads do not divide D %0d", HEADS, D);
    initial if (SPLIT < 1 || HD % SPLIT != 0) $error("hqflow_stream_ssa: SPLIT %0d does not divide HD %0d", SPLIT, HD);

    reg [3:0] state;
    localparam integer WB = $clog2(ND + 1);    // word counts 0 .. ND
    reg [WB-1:0] wq, wk, wv;            // words of q, k, v taken
    reg tok_in;                         // wk >= tok_end && wv >= tok_end, registered (AWAIT0 lets it settle)
    reg q_full;                         // wq == ND
    assign q_tready = !q_full;          // wq < ND (reset to 0 after the image's last output)
    reg [WB-1:0] base, tok_end, tok_lim;   // n*D + h*HD; (n+1)*D; (n+2)*D
    // k_tready = wk < ND && wk < tok_lim (the ring: A's token n and the next), v_tready alike, registered: the
    // compares of the next count (wk or wk + 1, side by side) with this cycle's tok_lim (it only grows within
    // an image; at an image's end the old count is full: ready falls for a cycle either way, never early)
    reg k_ready, v_ready;
    reg [WB-1:0] wk_p1, wv_p1;          // wk + 1, wv + 1
    assign k_tready = k_ready;
    assign v_tready = v_ready;
    wire q_put = q_tvalid && q_tready, k_put = k_tvalid && k_tready, v_put = v_tvalid && v_tready;

    reg [AB-1:0] addr;                  // n*D + h*HD + idx
    reg [$clog2(N + 1)-1:0] n;          // the token
    reg [$clog2(HEADS + 1)-1:0] h;      // the head
    reg [NB-1:0] idx;                   // the channel within the head
    reg [SB-1:0] sl;                    // the kv slice
    wire [T-1:0] q_q, k_q, v_q;
    hqflow_ram #(.WIDTH(T), .DEPTH(ND), .ADDR_BITS(AB), .ULTRA(ULTRA)) q_ram (
        .clk(clk), .we(q_put), .waddr(wq[AB-1:0]), .wdata(q_tdata), .re(1'b1), .raddr(addr), .rdata(q_q));
    hqflow_ram #(.WIDTH(T), .DEPTH(RD), .ADDR_BITS(RB)) k_ram (
        .clk(clk), .we(k_put), .waddr(wk[RB-1:0]), .wdata(k_tdata), .re(1'b1), .raddr(addr[RB-1:0]), .rdata(k_q));
    hqflow_ram #(.WIDTH(T), .DEPTH(RD), .ADDR_BITS(RB)) v_ram (
        .clk(clk), .we(v_put), .waddr(wv[RB-1:0]), .wdata(v_tdata), .re(1'b1), .raddr(addr[RB-1:0]), .rdata(v_q));

    // kv words (h*HD + i)*SPLIT + s: HS*T counts, lane s HS + jj step t in bits [(jj*T + t)*KV_BITS, +KV_BITS)
    reg [KB-1:0] kv_raddr;
    reg [HS*T*KV_BITS-1:0] kv_new;
    reg [HD*T*ACC_BITS-1:0] y_next;
    wire [HS*T*KV_BITS-1:0] kv_row;
    hqflow_ram #(.WIDTH(HS * T * KV_BITS), .DEPTH(D * SPLIT), .ADDR_BITS(KB)) kv_ram (
        .clk(clk), .we(d_a2), .waddr(d_row), .wdata(kv_new), .re(1'b1), .raddr(kv_raddr), .rdata(kv_row));

    reg d_a1, d_a2, d_b1, d_n0, d_i0;   // the data stage (one cycle after a read)
    reg e_b1, e_i0;                     // B's add stage (two cycles after a read): its operands registered
    reg [SB-1:0] e_sl;
    reg [T-1:0] q_r;
    reg [HS*T*KV_BITS-1:0] kv_r;
    reg [KB-1:0] d_row;
    reg [SB-1:0] d_sl;
    reg [HD*T-1:0] vrow;                // lane j's v word in bits [j*T, j*T + T) (A: rotated a slice a cycle)
    reg [HD*T*ACC_BITS-1:0] y;          // step t, lane j in bits [(t*HD + j)*ACC_BITS, +ACC_BITS)
    integer j, cj, ct;            // (the combinational block has its own loop variables)
    reg [ACC_BITS-1:0] kv_wide;
    always @* begin                     // A's kv slice update and B's y update (the data stage)
        kv_new = 0; y_next = y; kv_wide = 0;
        for (cj = 0; cj < HS; cj = cj + 1)  // slice lane cj: v lane cj of the rotated register
            for (ct = 0; ct < T; ct = ct + 1)
                kv_new[(cj*T + ct)*KV_BITS +: KV_BITS] = (d_n0 ? {KV_BITS{1'b0}} : kv_row[(cj*T + ct)*KV_BITS +: KV_BITS])
                                                      + (k_q[ct] & vrow[cj*T + ct]);
        for (cj = 0; cj < HD; cj = cj + 1)  // lane cj takes slice cj / HS's lane cj % HS (constant indices)
            if (SPLIT == 1 || e_sl == cj / HS)
                for (ct = 0; ct < T; ct = ct + 1) begin
                    kv_wide = kv_r[((cj % HS)*T + ct)*KV_BITS +: KV_BITS];
                    y_next[(ct*HD + cj)*ACC_BITS +: ACC_BITS] = (e_i0 ? {ACC_BITS{1'b0}} : y[(ct*HD + cj)*ACC_BITS +: ACC_BITS])
                                                             + (q_r[ct] ? kv_wide : {ACC_BITS{1'b0}});
                end
    end

    // the attention LIF, HD lanes: PREP forms step ps's inputs I = (y << F) + CHARGE, D = (y << F) + FIRE
    // (registered), LIF runs step ts on them (the step after prepared beside it)
    reg [$clog2(T + 1)-1:0] ts;         // the step
    reg [T-1:0] ps;                     // one-hot: the step prepared at this edge
    reg [HD*V_BITS-1:0] vm;             // (0 after a head's last step)
    reg [HD*V_BITS-1:0] in_i, vm_next;
    reg [HD*E_BITS-1:0] in_d;
    reg [HD-1:0] spikes;
    reg [HD*ACC_BITS-1:0] y_step;       // step ps of y: an AND-OR multiplexer (y holds still: no logic per bit)
    integer st, lp;
    always @* begin
        y_step = 0;
        for (st = 0; st < T; st = st + 1) y_step = y_step | (y[st*HD*ACC_BITS +: HD*ACC_BITS] & {HD*ACC_BITS{ps[st]}});
        for (lp = 0; lp < HD; lp = lp + 1) begin : lif_lane
            reg [V_BITS-1:0] x;
            reg [E_BITS-1:0] e;
            x = vm[lp*V_BITS +: V_BITS] + in_i[lp*V_BITS +: V_BITS];
            e = {{3{vm[lp*V_BITS + V_BITS - 1]}}, vm[lp*V_BITS +: V_BITS]} + in_d[lp*E_BITS +: E_BITS];
            spikes[lp] = NEG ? e[E_BITS-1] : !e[E_BITS-1];
            vm_next[lp*V_BITS +: V_BITS] = spikes[lp] || ts == T - 1 ? {V_BITS{1'b0}} : {x[V_BITS-1], x[V_BITS-1:1]};
        end
    end
    always @(posedge clk) begin : prepare
        reg [E_BITS-1:0] shifted;
        integer pl;
        for (pl = 0; pl < HD; pl = pl + 1) begin
            shifted = {{E_BITS{y_step[pl*ACC_BITS + ACC_BITS - 1]}}, y_step[pl*ACC_BITS +: ACC_BITS]} << F;
            in_i[pl*V_BITS +: V_BITS] <= shifted[V_BITS-1:0] + CHARGE[V_BITS-1:0];
            in_d[pl*E_BITS +: E_BITS] <= shifted + FIRE[E_BITS-1:0];
        end
    end
    reg [HD*T-1:0] spk;

    reg [HD*T-1:0] bank;
    reg [NB-1:0] bank_n;
    reg bank_last;
    assign m_tvalid = bank_n != 0;
    assign m_tdata = bank[T-1:0];
    assign m_tlast = bank_last && bank_n == 1;
    wire bank_free = bank_n == 0;
    assign active = state == S_AWAIT0 || (state == S_AWAIT && tok_in) || state == S_A1 || state == S_A2
                    || (state == S_BWAIT && q_full) || state == S_B1 || state == S_DRAIN || state == S_DRAIN2
                    || state == S_PREP || state == S_LIF
                    || (state == S_HAND && bank_free);

    always @(posedge clk) begin
        if (q_put) begin wq <= wq + 1'b1; q_full <= wq == ND - 1; end
        tok_in <= wk >= tok_end && wv >= tok_end;
        if (k_put) begin wk <= wk_p1; wk_p1 <= wk_p1 + 1'b1; end
        if (v_put) begin wv <= wv_p1; wv_p1 <= wv_p1 + 1'b1; end
        k_ready <= !rst && (k_put ? wk_p1 < ND && wk_p1 < tok_lim : wk < ND && wk < tok_lim);
        v_ready <= !rst && (v_put ? wv_p1 < ND && wv_p1 < tok_lim : wv < ND && wv < tok_lim);
        d_a1 <= state == S_A1;
        d_a2 <= state == S_A2;
        d_b1 <= state == S_B1;
        d_n0 <= n == 0;
        d_i0 <= idx == 0;
        d_sl <= sl;
        d_row <= kv_raddr;
        e_b1 <= d_b1; e_i0 <= d_i0; e_sl <= d_sl; q_r <= q_q; kv_r <= kv_row;
        if (d_a1) begin                 // v's words shift in from the top: word j ends in lane j
            for (j = 0; j < HD - 1; j = j + 1) vrow[j*T +: T] <= vrow[(j+1)*T +: T];
            vrow[(HD-1)*T +: T] <= v_q;
        end
        if (d_a2 && SPLIT > 1)          // the next slice's lanes down to lanes 0 .. HS-1 (after SPLIT: as loaded)
            vrow <= (vrow >> (HS * T)) | (vrow << ((HD - HS) * T));
        if (e_b1) y <= y_next;
        if (m_tvalid && m_tready) begin bank <= bank >> T; bank_n <= bank_n - 1'b1; end
        case (state)
            S_AWAIT: if (tok_in) begin          // token n's k and v are in (tok_end = (n+1)*D)
                state <= S_A1; h <= 0; idx <= 0; sl <= 0; base <= tok_end - D; addr <= tok_end - D;
                kv_raddr <= 0;
            end
            S_A1: begin                         // read v[n][h HD + idx]
                if (idx == HD - 1) begin idx <= 0; addr <= base; state <= S_A2; end
                else begin idx <= idx + 1; addr <= addr + 1'b1; end
            end
            S_A2: begin                         // read k[n][h HD + idx] and kv word (h HD + idx) SPLIT + sl
                kv_raddr <= kv_raddr + 1'b1;
                if (sl != SPLIT - 1) sl <= sl + 1'b1;
                else if (idx != HD - 1) begin sl <= 0; idx <= idx + 1; addr <= addr + 1'b1; end
                else begin
                    sl <= 0;
                    addr <= addr + 1'b1;
                    idx <= 0;
                    if (h != HEADS - 1) begin h <= h + 1; base <= base + HD; state <= S_A1; end
                    else if (n != N - 1) begin n <= n + 1; tok_end <= tok_lim; tok_lim <= tok_lim + D; state <= S_AWAIT0; end
                    else begin n <= 0; state <= S_BWAIT; end
                end
            end
            S_AWAIT0: state <= S_AWAIT;
            S_BWAIT: if (q_full) begin
                state <= S_B1; n <= 0; h <= 0; idx <= 0; sl <= 0; addr <= 0; base <= 0; kv_raddr <= 0;
            end
            S_B1: begin                         // read q[n][h HD + idx] and kv word (h HD + idx) SPLIT + sl
                kv_raddr <= kv_raddr + 1'b1;
                if (sl != SPLIT - 1) sl <= sl + 1'b1;
                else begin
                    sl <= 0;
                    addr <= addr + 1'b1;
                    if (idx != HD - 1) idx <= idx + 1;
                    else begin idx <= 0; state <= S_DRAIN; end
                end
            end
            S_DRAIN: state <= S_DRAIN2;
            S_DRAIN2: begin state <= S_PREP; ps <= 1; end
            S_PREP: begin state <= S_LIF; ts <= 0; ps <= ps << 1; end
            S_LIF: begin
                vm <= vm_next;
                ps <= ps << 1;
                for (j = 0; j < HD; j = j + 1)   // lane j's word shifts in step ts from the top (constant indices)
                    spk[j*T +: T] <= (spk[j*T +: T] >> 1) | ({{(T > 1 ? T - 1 : 1){1'b0}}, spikes[j]} << (T - 1));
                ts <= ts + 1;
                if (ts == T - 1) state <= S_HAND;
            end
            default: if (bank_free) begin       // S_HAND
                bank <= spk; bank_n <= HD;
                bank_last <= n == N - 1 && h == HEADS - 1;
                if (h != HEADS - 1) begin h <= h + 1; state <= S_B1; end
                else begin
                    h <= 0; kv_raddr <= 0;
                    if (n != N - 1) begin n <= n + 1; state <= S_B1; end
                    else begin                  // the image is done: take the next one
                        n <= 0; tok_end <= D; tok_lim <= 2 * D; addr <= 0;
                        wq <= 0; wk <= 0; wv <= 0; wk_p1 <= 1; wv_p1 <= 1; q_full <= 0;
                        tok_in <= 0; state <= S_AWAIT;     // (no k or v in: the compare starts from 0)
                    end
                end
            end
        endcase
        if (rst) begin
            state <= S_AWAIT; tok_in <= 0; wq <= 0; wk <= 0; wv <= 0; wk_p1 <= 1; wv_p1 <= 1; q_full <= 0; n <= 0; tok_end <= D; tok_lim <= 2 * D;
            addr <= 0; bank_n <= 0; bank_last <= 0; d_a1 <= 0; d_a2 <= 0; d_b1 <= 0; e_b1 <= 0; vm <= 0;
        end
    end

    initial begin
        state = S_AWAIT; tok_in = 0; wq = 0; wk = 0; wv = 0; wk_p1 = 1; wv_p1 = 1; k_ready = 0; v_ready = 0; q_full = 0; n = 0; tok_end = D; tok_lim = 2 * D; addr = 0;
        bank_n = 0; bank_last = 0; d_a1 = 0; d_a2 = 0; d_b1 = 0; e_b1 = 0; vm = 0; ps = 0;
    end
endmodule
