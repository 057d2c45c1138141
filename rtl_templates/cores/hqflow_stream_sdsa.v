// hqflow_stream_sdsa: the Spike-driven Transformer's self-attention (numerics.sdsa_count, ops/sdsa.py):
//   count[t][d] = sum_n k[t][n][d] AND v[t][n][d]                      (0 .. N, COUNT_BITS)
//   mask[t][d]  = the LIF over t of count[.][d] (hqflow_lif.v, one channel of constants)
//   out[t][n][d] = q[t][n][d] AND mask[t][d]
// Streams q, k, v in (taken together, element n*D + d, T spikes a word) and out (the same order; tlast on
// an image's last element). q of every token is kept (the mask needs the last token's k and v): a barrier.
// Phases per image, `active` high in each of their cycles:
//   LOAD  N D cycles (an element of q, k, v taken: q stored, the T counts of its channel updated)
//   MASK  D T cycles (channel d, step t: one LIF step)
//   EMIT  N D cycles (an element handed to the output register)
//   active cycles per image = 2 N D + D T.
module hqflow_stream_sdsa #(
    parameter integer N = 1, D = 1, T = 1, COUNT_BITS = 1, V_BITS = 2, F = 0,
    parameter [63:0] BIAS = 64'd0, THR = 64'd0,      // the one channel's bias_int, thr_int (two's complement)
    parameter [1:0] SIGN = 2'b01
) (
    input  wire         clk,
    input  wire         rst,
    input  wire         q_tvalid,
    output wire         q_tready,
    input  wire [T-1:0] q_tdata,
    input  wire         k_tvalid,
    output wire         k_tready,
    input  wire [T-1:0] k_tdata,
    input  wire         v_tvalid,
    output wire         v_tready,
    input  wire [T-1:0] v_tdata,
    output reg          m_tvalid,
    input  wire         m_tready,
    output reg  [T-1:0] m_tdata,
    output reg          m_tlast,
    output wire         active
);
    localparam integer ND = N * D;
    localparam integer EB = ND > 1 ? $clog2(ND) : 1;
    localparam integer DB = D > 1 ? $clog2(D) : 1;
    localparam integer TB = T > 1 ? $clog2(T) : 1;
    localparam [1:0] LOAD = 2'd0, MASK = 2'd1, EMIT = 2'd2;
    generate
        if (N < 1 || D < 1 || T < 1 || COUNT_BITS < $clog2(N + 1) || V_BITS < 2 || V_BITS > 64)
            $error("hqflow_stream_sdsa: N %0d, D %0d, T %0d, COUNT_BITS %0d (>= clog2(N + 1)), V_BITS %0d", N, D, T,
                   COUNT_BITS, V_BITS);
    endgenerate

    reg [T-1:0] q_mem [0:ND-1];          // read asynchronously: LUT RAM or registers (block RAM: a TODO)
    reg [T*COUNT_BITS-1:0] count [0:D-1];
    reg [T-1:0] mask [0:D-1];
    reg [1:0] phase;
    reg [EB-1:0] e;                      // LOAD, EMIT: the element
    reg [DB-1:0] d;                      // LOAD, EMIT: its channel; MASK: the channel
    reg [TB-1:0] t;                      // MASK: the step
    reg [V_BITS-1:0] v;
    integer s;

    wire take = phase == LOAD && q_tvalid && k_tvalid && v_tvalid;
    assign q_tready = take;
    assign k_tready = take;
    assign v_tready = take;
    wire give = phase == EMIT && (!m_tvalid || m_tready);
    assign active = take || phase == MASK || give;

    wire [T-1:0] both = k_tdata & v_tdata;
    wire [T*COUNT_BITS-1:0] counted = count[d];
    wire [COUNT_BITS:0] acc = {1'b0, counted[t*COUNT_BITS +: COUNT_BITS]};
    wire [V_BITS-1:0] v_next;
    wire spike;
    hqflow_lif #(.P(1), .ACC_BITS(COUNT_BITS + 1), .V_BITS(V_BITS), .F(F), .T(T)) lif (
        .first(t == 0), .acc(acc), .v(v), .bias(BIAS[V_BITS-1:0]), .thr(THR[V_BITS-1:0]), .sign(SIGN),
        .v_next(v_next), .spikes(spike));

    always @(posedge clk) begin
        if (m_tvalid && m_tready) m_tvalid <= 0;
        case (phase)
            LOAD: if (take) begin
                q_mem[e] <= q_tdata;
                for (s = 0; s < T; s = s + 1)
                    count[d][s*COUNT_BITS +: COUNT_BITS] <= (e < D ? {COUNT_BITS{1'b0}} : count[d][s*COUNT_BITS +: COUNT_BITS])
                                                            + both[s];
                if (e == ND - 1) begin phase <= MASK; d <= 0; t <= 0; e <= 0; end
                else begin e <= e + 1'b1; d <= d == D - 1 ? {DB{1'b0}} : d + 1'b1; end
            end
            MASK: begin
                v <= v_next;
                mask[d][t] <= spike;
                if (t == T - 1) begin
                    t <= 0;
                    if (d == D - 1) begin phase <= EMIT; d <= 0; end
                    else d <= d + 1'b1;
                end else
                    t <= t + 1'b1;
            end
            default: if (give) begin
                m_tvalid <= 1;
                m_tdata <= q_mem[e] & mask[d];
                m_tlast <= e == ND - 1;
                if (e == ND - 1) begin phase <= LOAD; e <= 0; d <= 0; end
                else begin e <= e + 1'b1; d <= d == D - 1 ? {DB{1'b0}} : d + 1'b1; end
            end
        endcase
        if (rst) begin phase <= LOAD; e <= 0; d <= 0; t <= 0; m_tvalid <= 0; end
    end
    initial begin phase = LOAD; e = 0; d = 0; t = 0; v = 0; m_tvalid = 0; end
endmodule
