// hqflow_fifo: a stream FIFO of DEPTH words in block RAM (hqflow_ram.v) plus a two-word output
// register, first word fall through: the skip path of a residual add holds the elements its other
// path has not produced yet. WIDTH data bits a word; one word in and one out a cycle. The stream's
// images are FRAME words each, tlast on the last: the FIFO keeps no tlast bit, it counts the words out
// (s_tlast is not stored: the producer's images are FRAME words long by construction).
// s_tready depends only on the fill (never on s_tvalid), and is a register: count < DEPTH for the next
// count as this cycle's put leaves it (this cycle's read not counted: ready rises a cycle after a read
// makes room, never early). Capacity DEPTH + 2 words.
module hqflow_fifo #(
    parameter integer WIDTH = 1,
    parameter integer DEPTH = 16,
    parameter integer FRAME = 16,
    parameter integer AB = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             s_tvalid,
    output wire             s_tready,
    input  wire [WIDTH-1:0] s_tdata,
    input  wire             s_tlast,
    output wire             m_tvalid,
    input  wire             m_tready,
    output wire [WIDTH-1:0] m_tdata,
    output wire             m_tlast
);
    reg [AB-1:0] wp, rp;
    reg [$clog2(DEPTH + 1)-1:0] count;  // words in the RAM (0 .. DEPTH)
    reg pend;                           // a RAM read in flight
    reg [WIDTH-1:0] ob0, ob1;           // output words, ob0 first
    reg [1:0] on;
    reg [$clog2(FRAME + 1)-1:0] out_n;  // words of the image out so far
    wire [WIDTH-1:0] q;
    initial if (FRAME < 1) $error("hqflow_fifo: FRAME %0d must be at least 1", FRAME);
    reg ready;
    assign s_tready = ready;
    wire put = s_tvalid && s_tready;
    wire room0 = count < DEPTH, room1 = count < DEPTH - 1;     // (side by side: put selects)
    assign m_tvalid = on != 0;
    assign m_tdata = ob0;
    assign m_tlast = out_n == FRAME - 1;
    wire pop = m_tvalid && m_tready;
    wire issue = count != 0 && ({1'b0, on} + pend < 2 + pop);
    hqflow_ram #(.WIDTH(WIDTH), .DEPTH(DEPTH), .ADDR_BITS(AB)) ram (
        .clk(clk), .we(put), .waddr(wp), .wdata(s_tdata), .re(issue), .raddr(rp), .rdata(q));
    wire [1:0] left = on - pop;         // output words after this cycle's pop
    always @(posedge clk) begin
        ready <= rst || (put ? room1 : room0);
        if (rst) begin
            wp <= 0; rp <= 0; count <= 0; pend <= 0; on <= 0; out_n <= 0;
        end else begin
            if (pop) out_n <= m_tlast ? 0 : out_n + 1'b1;
            if (put) wp <= wp == DEPTH - 1 ? 0 : wp + 1'b1;
            if (issue) rp <= rp == DEPTH - 1 ? 0 : rp + 1'b1;
            count <= count + put - issue;
            pend <= issue;
            if (pop) ob0 <= ob1;
            if (pend) begin
                if (left == 0) ob0 <= q; else ob1 <= q;
            end
            on <= left + pend;
        end
    end
    initial begin wp = 0; rp = 0; count = 0; pend = 0; on = 0; out_n = 0; ready = 0; end
endmodule
