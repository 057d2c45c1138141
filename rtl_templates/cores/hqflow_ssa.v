// hqflow_ssa: spiking self-attention with its attention LIF, one time step (numerics.ssa_int, then
// lif_step with the node's one-channel constants; HLS hqflow::ssa_lif).
//   q, k, v [N][D] spikes (address n * D + c), heads of HD = D / HEADS channels. Per head h:
//     kv[i][j]      = sum_n k[n][h HD + i] * v[n][h HD + j]          (counts <= N, KV_BITS unsigned)
//     y[n][h HD + j] = sum_i q[n][h HD + i] * kv[i][j]               (<= N HD, ACC_BITS two's compl.)
//   then per (n, c) the LIF of hqflow_lif.v (one lane): h = (v + (y << F) + (bias << T)) >>> 1,
//   s = sign * h >= thr, v' = s ? 0 : h; the membranes v [N][D] (V_BITS) stay in the core between
//   steps; `first` (t = 0) takes them as 0. Products of spikes are ANDs; k^T v first costs N HD^2.
//
// Schedule, per head, with HD-lane vectors (one read address per cycle, shared by q, k, v and the
// membrane RAM: n * D + h HD + j):
//   for n: A1 read v[n][h HD + 0..HD-1] into vrow (HD cycles)
//          A2 read k[n][h HD + i] and kv row i; write kv row i = (n == 0 ? 0 : row) + (k ? vrow : 0)
//   one idle cycle (kv's last row written before it is read again, also for HD = 1)
//   for n: B1 read q[n][h HD + i] and kv row i: y += q ? row : 0          (HD cycles)
//          B2 read the membrane of (n, h HD + j): LIF of y[j], write v' and s[n][h HD + j]
// Each phase issues one read per cycle; the data arrive one cycle later (tagged), so the phases run
// back to back. Outputs s [N][D] (address n * D + c, one spike per word) and the membrane writes
// are registered. Ports (the sequential cores' convention): qkv_addr -> q_data, k_data, v_data (the
// three RAMs read through one address, latency 1); out_we / out_addr / out_data a RAM write port.
//
// Memories inside: kv [HD] x HD*KV_BITS and v [N*D] x V_BITS (hqflow_ram: block RAM).
// Handshake as every hqflow core: a one-cycle `start` (with `first`) while idle runs one step;
// `done` is high in the cycle that presents the last write; busy from the cycle after start until done.
// Cycles per time step (the start edge to the edge that samples done):  4 * N * D + HEADS + 2
// Constants: bias, thr (V_BITS) and sign (2'b01 +1, 2'b11 -1, 2'b00 0) of the node's one LIF
// channel (fold_lif(1, 0, attn_scale, 0.5, 0, T): bias 0); the top ties them to the node's values.
module hqflow_ssa #(
    parameter integer N = 4,
    parameter integer D = 4,
    parameter integer HEADS = 1,
    parameter integer ACC_BITS = 8,
    parameter integer V_BITS = 16,
    parameter integer F = 2,
    parameter integer T = 2,
    parameter integer ADDR_BITS = (N * D > 1) ? $clog2(N * D) : 1
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 start,
    input  wire                 first,
    output wire                 busy,
    output wire                 done,
    input  wire [V_BITS-1:0]    bias,
    input  wire [V_BITS-1:0]    thr,
    input  wire [1:0]           sign,
    output wire [ADDR_BITS-1:0] qkv_addr,   // to the q, k and v RAMs
    input  wire                 q_data,
    input  wire                 k_data,
    input  wire                 v_data,
    output reg                  out_we,
    output reg  [ADDR_BITS-1:0] out_addr,
    output reg                  out_data
);
    initial begin  // elaboration-time checks of the parameters
        if (N < 1 || D < 1 || HEADS < 1 || D % HEADS != 0)
            $error("hqflow_ssa: sizes N %0d D %0d HEADS %0d must be >= 1, HEADS dividing D", N, D, HEADS);
        if (ACC_BITS < 1 || ACC_BITS > 64 || V_BITS < 2 || V_BITS > 64 || F < 0 || T < 0)
            $error("hqflow_ssa: ACC_BITS %0d (1..64), V_BITS %0d (2..64), F %0d and T %0d (>= 0)", ACC_BITS, V_BITS, F, T);
    end
    localparam integer HD = D / HEADS;
    localparam integer KV_BITS = $clog2(N + 1);
    localparam integer JB = (HD > 1) ? $clog2(HD) : 1;
    localparam integer NB = (N > 1) ? $clog2(N) : 1;
    localparam integer HB = (HEADS > 1) ? $clog2(HEADS) : 1;
    localparam [2:0] S_IDLE = 3'd0, S_A1 = 3'd1, S_A2 = 3'd2, S_GAP = 3'd3, S_B1 = 3'd4, S_B2 = 3'd5;

    reg [2:0]           state, state1;
    reg [JB-1:0]        j, j1;
    reg [NB-1:0]        n;
    reg [HB-1:0]        h;
    reg [ADDR_BITS-1:0] head_base, tok_base, addr1;
    reg                 first_r, n0_1, valid1;
    reg [HD-1:0]        vrow;
    reg [HD*ACC_BITS-1:0] y;

    assign qkv_addr = tok_base + j;
    assign busy = state != S_IDLE || valid1 || out_we;
    assign done = out_we && out_addr == N * D - 1;

    // kv rows: read at issue (A2, B1), written in A2's data cycle
    wire [HD*KV_BITS-1:0] kv_row;
    reg  [HD*KV_BITS-1:0] kv_new;
    wire kv_we = valid1 && state1 == S_A2;
    hqflow_ram #(.WIDTH(HD * KV_BITS), .DEPTH(HD), .ADDR_BITS(JB)) kv_ram (
        .clk(clk), .we(kv_we), .waddr(j1), .wdata(kv_new), .re(1'b1), .raddr(j), .rdata(kv_row));

    // membranes: read at B2's issue, written (registered) after the LIF
    wire [V_BITS-1:0] v_old, v_next;
    reg               v_we;
    reg  [ADDR_BITS-1:0] v_waddr;
    reg  [V_BITS-1:0] v_wdata;
    hqflow_ram #(.WIDTH(V_BITS), .DEPTH(N * D), .ADDR_BITS(ADDR_BITS)) v_ram (
        .clk(clk), .we(v_we), .waddr(v_waddr), .wdata(v_wdata), .re(1'b1), .raddr(qkv_addr), .rdata(v_old));

    wire spike;
    hqflow_lif #(.P(1), .ACC_BITS(ACC_BITS), .V_BITS(V_BITS), .F(F), .T(T)) lif (
        .first(first_r), .acc(y[ACC_BITS-1:0]), .v(v_old), .bias(bias), .thr(thr), .sign(sign),
        .v_next(v_next), .spikes(spike));

    integer p;
    always @* begin
        for (p = 0; p < HD; p = p + 1)
            kv_new[p*KV_BITS +: KV_BITS] = (n0_1 ? {KV_BITS{1'b0}} : kv_row[p*KV_BITS +: KV_BITS])
                                            + (k_data & vrow[p]);
    end

    // the schedule
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
        end else if (state == S_IDLE) begin
            if (start && !busy) begin
                state <= S_A1;
                j <= 0; n <= 0; h <= 0;
                head_base <= 0; tok_base <= 0;
                first_r <= first;
            end
        end else if (state == S_GAP) begin
            state <= S_B1;
        end else if (j != HD - 1) begin
            j <= j + 1'b1;
        end else begin
            j <= 0;
            case (state)
                S_A1: state <= S_A2;
                S_B1: state <= S_B2;
                S_A2, S_B2:
                    if (n != N - 1) begin
                        n <= n + 1'b1;
                        tok_base <= tok_base + D;
                        state <= state == S_A2 ? S_A1 : S_B1;
                    end else begin
                        n <= 0;
                        if (state == S_A2) begin
                            tok_base <= head_base;
                            state <= S_GAP;
                        end else if (h != HEADS - 1) begin
                            h <= h + 1'b1;
                            head_base <= head_base + HD;
                            tok_base <= head_base + HD;
                            state <= S_A1;
                        end else begin
                            state <= S_IDLE;
                        end
                    end
                default: state <= S_IDLE;
            endcase
        end
    end

    // the data cycle: one cycle after each read
    always @(posedge clk) begin
        if (rst) begin
            valid1 <= 1'b0;
            out_we <= 1'b0;
            v_we <= 1'b0;
        end else begin
            valid1 <= state == S_A1 || state == S_A2 || state == S_B1 || state == S_B2;
            state1 <= state;
            j1 <= j;
            n0_1 <= n == 0;
            addr1 <= qkv_addr;
            if (valid1 && state1 == S_A1) vrow <= (vrow >> 1) | ({{HD{1'b0}}, v_data} << (HD - 1));
            if (valid1 && state1 == S_B1)
                for (p = 0; p < HD; p = p + 1)
                    y[p*ACC_BITS +: ACC_BITS] <= (j1 == 0 ? {ACC_BITS{1'b0}} : y[p*ACC_BITS +: ACC_BITS])
                                                 + (q_data ? kv_row[p*KV_BITS +: KV_BITS] : {KV_BITS{1'b0}});
            if (valid1 && state1 == S_B2) y <= y >> ACC_BITS;
            out_we <= valid1 && state1 == S_B2;
            out_addr <= addr1;
            out_data <= spike;
            v_we <= valid1 && state1 == S_B2;
            v_waddr <= addr1;
            v_wdata <= v_next;
        end
    end
endmodule
